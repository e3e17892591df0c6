# Train the network found by auto_deeplab_toy.py on the toy Cityscapes layout
# and report mIoU per class. The arch path is where the search writes by
# default; for another work dir W pass --cfg-options model.backbone.arch=W/best_arch.json
#   python tools/train.py configs/auto_deeplab/auto_deeplab_finetune_toy.py
#   python tools/test.py configs/auto_deeplab/auto_deeplab_finetune_toy.py \
#       work_dirs/auto_deeplab_finetune_toy/iter_200.pth
_base_ = [
    '../_base_/models/auto_deeplab_deeplabv3plus.py',
    '../_base_/datasets/toy_cityscapes.py',
    '../_base_/nas_tasks_runtime.py',
    '../_base_/schedules/toy_segmentation_finetune.py',
]
crop_size = (64, 64)  # the toy crop of toy_cityscapes.py
model = dict(
    data_preprocessor=dict(size=crop_size),
    # F = 8 instead of the exported 20 keeps CPU training short; the cell and
    # the path are the searched ones.
    backbone=dict(arch='work_dirs/auto_deeplab_toy/best_arch.json', filter_multiplier=8),
    decode_head=dict(channels=64, c1_channels=16))
