# Parameter adaptation of the network found by fna_deeplabv3_cityscapes.py, with the
# official settings (JaminFong/FNA fna_seg .../cityscapes.deeplabv3/config.py): 769x769
# crops, batch 16, SGD lr 0.01 poly 0.9, momentum 0.9, weight decay 5e-4, 100K iterations,
# SyncBN, output stride 16. Reports val mIoU.
#   torchrun --nproc-per-node 8 tools/train.py configs/fna/deeplabv3_fna_finetune_cityscapes.py \
#       --launcher pytorch
_base_ = [
    '../_base_/models/deeplabv3_fna.py',
    '../_base_/datasets/cityscapes.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py',
    '../_base_/nas_tasks_runtime.py',
]
crop_size = (769, 769)
norm_cfg = dict(type='SyncBN', requires_grad=True)
search_dir = 'work_dirs/fna_deeplabv3_cityscapes'
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(arch=search_dir + '/best_arch.json', weights=search_dir + '/adapted_weights.pth'),
    decode_head=dict(norm_cfg=norm_cfg))
train_dataloader = dict(batch_size=2)  # x 8 GPUs = 16
max_iters = 100000
train_cfg = dict(max_iters=max_iters, val_interval=10000)
optim_wrapper = dict(optimizer=dict(lr=0.01, momentum=0.9, weight_decay=5e-4))
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters,
                        by_epoch=False)]
