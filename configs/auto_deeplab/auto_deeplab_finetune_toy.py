# Train the network found by auto_deeplab_toy.py on the toy Cityscapes layout
# and report mIoU per class. The arch path is where the search writes by
# default; for another work dir W pass --cfg-options model.backbone.arch=W/best_arch.json
#   python tools/train.py configs/auto_deeplab/auto_deeplab_finetune_toy.py
#   python tools/test.py configs/auto_deeplab/auto_deeplab_finetune_toy.py \
#       work_dirs/auto_deeplab_finetune_toy/iter_200.pth
_base_ = [
    '../_base_/models/auto_deeplab_deeplabv3plus.py',
    '../_base_/datasets/toy_cityscapes.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py',
    '../_base_/nas_tasks_runtime.py',
]
crop_size = (64, 64)  # the toy crop of toy_cityscapes.py
model = dict(
    data_preprocessor=dict(size=crop_size),
    # F = 8 instead of the exported 20 keeps CPU training short; the cell and
    # the path are the searched ones.
    backbone=dict(arch='work_dirs/auto_deeplab_toy/best_arch.json', filter_multiplier=8),
    decode_head=dict(channels=64, c1_channels=16))

max_iters = 200
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
optim_wrapper = dict(optimizer=dict(lr=0.01, weight_decay=4e-5))
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters, by_epoch=False),
]
default_hooks = dict(logger=dict(interval=25),
                     checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
