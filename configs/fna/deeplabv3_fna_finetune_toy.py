# Parameter adaptation of the network found by fna_deeplabv3_toy.py: mmseg's DeepLabv3
# with the adapted timm backbone (output stride 16), started from the seed weights
# remapped into it; mIoU per class. For another search work dir W pass
#   --cfg-options model.backbone.arch=W/best_arch.json model.backbone.weights=W/adapted_weights.pth
#   python tools/train.py configs/fna/deeplabv3_fna_finetune_toy.py
#   python tools/test.py configs/fna/deeplabv3_fna_finetune_toy.py \
#       work_dirs/deeplabv3_fna_finetune_toy/iter_200.pth
_base_ = [
    '../_base_/models/deeplabv3_fna.py',
    '../_base_/datasets/toy_cityscapes.py',
    '../_base_/nas_tasks_runtime.py',
    '../_base_/schedules/toy_segmentation_finetune.py',
]
crop_size = (64, 64)  # the toy crop of toy_cityscapes.py
search_dir = 'work_dirs/fna_deeplabv3_toy'
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(arch=search_dir + '/best_arch.json', weights=search_dir + '/adapted_weights.pth'),
    decode_head=dict(channels=64))
