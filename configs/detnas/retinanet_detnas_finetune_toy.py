# Fine-tune the backbone found by detnas_retinanet_toy.py in RetinaNet. The
# paths below are where the demo writes; for another search work dir W pass
#   --cfg-options model.backbone.arch=W/best_arch.json \
#       model.backbone.init_cfg.checkpoint=W/best_subnet.pth
#   python tools/train.py configs/detnas/retinanet_detnas_finetune_toy.py
#   python tools/test.py configs/detnas/retinanet_detnas_finetune_toy.py \
#       work_dirs/retinanet_detnas_finetune_toy/iter_200.pth
_base_ = [
    '../_base_/models/retinanet_detnas_supernet.py',
    '../_base_/datasets/toy_coco_detection.py',
    'mmdet::_base_/default_runtime.py',
    '../_base_/nas_tasks_runtime.py',
]
# The search's work dir: it holds best_arch.json and best_subnet.pth.
search_dir = 'work_dirs/detnas_toy'
model = dict(
    backbone=dict(
        _delete_=True, type='DetNASBackbone', arch=search_dir + '/best_arch.json',
        init_cfg=dict(type='Pretrained', checkpoint=search_dir + '/best_subnet.pth')),
    neck=dict(out_channels=64),
    bbox_head=dict(num_classes=2, in_channels=64, feat_channels=64, stacked_convs=2))

max_iters = 200
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=4e-5),
                     clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=20, end=max_iters, eta_min=1e-4),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=25),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
