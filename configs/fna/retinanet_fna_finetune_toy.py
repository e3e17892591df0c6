# Parameter adaptation of the network found by fna_retinanet_toy.py: RetinaNet with the
# adapted timm backbone, started from the seed weights remapped into it. For another
# search work dir W pass
#   --cfg-options model.backbone.arch=W/best_arch.json model.backbone.weights=W/adapted_weights.pth
#   python tools/train.py configs/fna/retinanet_fna_finetune_toy.py
#   python tools/test.py configs/fna/retinanet_fna_finetune_toy.py \
#       work_dirs/retinanet_fna_finetune_toy/iter_200.pth
_base_ = [
    '../_base_/models/retinanet_fna.py',
    '../_base_/datasets/toy_coco_detection.py',
    '../_base_/nas_tasks_runtime.py',
    '../_base_/schedules/toy_detection_finetune.py',
]
search_dir = 'work_dirs/fna_retinanet_toy'
model = dict(
    backbone=dict(arch=search_dir + '/best_arch.json', weights=search_dir + '/adapted_weights.pth'),
    neck=dict(out_channels=64),
    bbox_head=dict(num_classes=2, in_channels=64, feat_channels=64, stacked_convs=2))
