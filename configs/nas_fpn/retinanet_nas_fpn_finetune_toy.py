# Train RetinaNet with the pyramid found by nas_fpn_retinanet_toy.py, on the toy
# data. The arch path below is where the toy search writes; for another search
# work dir W pass --cfg-options model.neck.arch=W/best_arch.json
#   python tools/train.py configs/nas_fpn/retinanet_nas_fpn_finetune_toy.py
#   python tools/test.py configs/nas_fpn/retinanet_nas_fpn_finetune_toy.py \
#       work_dirs/retinanet_nas_fpn_finetune_toy/iter_300.pth
_base_ = [
    '../_base_/models/retinanet_nas_fpn_proxy.py',
    '../_base_/datasets/toy_coco_detection.py',
    'mmdet::_base_/default_runtime.py',
    # custom_imports, so that mmdet's own tools/train.py and test.py work too.
    '../_base_/nas_tasks_runtime.py',
]

search_dir = 'work_dirs/nas_fpn_toy'
# The proxy detector of the search, with the found pyramid network repeated
# three times (the paper searches one pyramid and stacks it in the final model).
width = 48
model = dict(
    backbone=dict(base_channels=32),
    neck=dict(arch=search_dir + '/best_arch.json', in_channels=[32, 64, 128, 256],
              out_channels=width, stack_times=3),
    bbox_head=dict(num_classes=2, in_channels=width, feat_channels=width, stacked_convs=2))

max_iters = 300
train_dataloader = dict(sampler=dict(type='InfiniteSampler', shuffle=True))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05),
    clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=20, end=max_iters, eta_min=1e-4),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=25),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
