# Auto-DeepLab-S (the paper's published path and cell, F = 20) trained from
# scratch on Cityscapes train, evaluated on val at full resolution, with the
# paper's schedule: poly learning rate from 0.05, 769x769 crops, 500K
# iterations, synchronised BN. Batch 8 in all: 2 images on each of 4 GPUs.
#   torchrun --nproc_per_node 4 tools/train.py configs/auto_deeplab/autodeeplab_s_cityscapes.py \
#       --launcher pytorch --cfg-options data_root=/path/to/cityscapes/
#   python tools/test.py configs/auto_deeplab/autodeeplab_s_cityscapes.py \
#       work_dirs/autodeeplab_s_cityscapes/iter_500000.pth
# A searched arch instead of the preset:
#   --cfg-options model.backbone.arch=work_dirs/auto_deeplab_cityscapes/best_arch.json
_base_ = [
    '../_base_/models/auto_deeplab_deeplabv3plus.py',
    '../_base_/datasets/cityscapes.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py',
    '../_base_/nas_tasks_runtime.py',
]
crop_size = (769, 769)
model = dict(data_preprocessor=dict(size=crop_size))

max_iters = 500000
train_cfg = dict(max_iters=max_iters, val_interval=20000)
optim_wrapper = dict(optimizer=dict(lr=0.05, weight_decay=4e-5))
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters, by_epoch=False),
]
default_hooks = dict(checkpoint=dict(interval=20000, max_keep_ckpts=3))
