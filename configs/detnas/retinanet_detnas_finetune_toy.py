# Fine-tune the backbone found by detnas_retinanet_toy.py in RetinaNet. The
# paths below are where the demo writes; for another search work dir W pass
#   --cfg-options model.backbone.arch=W/best_arch.json \
#       model.backbone.init_cfg.checkpoint=W/best_subnet.pth
#   python tools/train.py configs/detnas/retinanet_detnas_finetune_toy.py
#   python tools/test.py configs/detnas/retinanet_detnas_finetune_toy.py \
#       work_dirs/retinanet_detnas_finetune_toy/iter_200.pth
_base_ = [
    '../_base_/models/retinanet_detnas_supernet.py',
    '../_base_/datasets/toy_coco_outline_detection.py',  # the search's data
    '../_base_/nas_tasks_runtime.py',
    '../_base_/schedules/toy_detection_finetune.py',
]
# The search's work dir: it holds best_arch.json and best_subnet.pth.
search_dir = 'work_dirs/detnas_toy'
model = dict(
    backbone=dict(
        _delete_=True, type='DetNASBackbone', arch=search_dir + '/best_arch.json',
        init_cfg=dict(type='Pretrained', checkpoint=search_dir + '/best_subnet.pth')),
    neck=dict(out_channels=64),
    bbox_head=dict(num_classes=2, in_channels=64, feat_channels=64, stacked_convs=2))
