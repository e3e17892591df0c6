# Parameter adaptation of the network found by fna_deeplabv3_cityscapes.py, with the
# official settings (JaminFong/FNA fna_seg .../cityscapes.deeplabv3/config.py and the
# TorchSeg furnace it runs on): 769x769 crops, batch 16, SGD lr 0.01, momentum 0.9,
# weight decay 5e-4, 100K iterations, SyncBN, output stride 16. Reports val mIoU.
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
    decode_head=dict(norm_cfg=norm_cfg),
    # The official evaluation: the whole image at scale 1, 769x769 windows at a stride of
    # ceil(769 * eval_stride_rate 2/3) = 513 (furnace/engine/evaluator.py scale_process).
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(513, 513)))

# The official augmentation (dataloader.py TrainPre): a mirror, a scale drawn from
# train_scale_array [0.75, 1, 1.25, 1.5, 1.75, 2.0], a random 769x769 crop padded where
# the image is smaller (here by the data preprocessor's size); no colour distortion.
train_scales = (0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
image_scale = (2048, 1024)  # (width, height) of the Cityscapes images
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomChoiceResize', resize_type='Resize', keep_ratio=True,
         scales=[(int(image_scale[0] * s), int(image_scale[1] * s)) for s in train_scales]),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=1.0),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))  # x 8 GPUs = 16

max_iters = 100000
warmup_iters = 5000
train_cfg = dict(max_iters=max_iters, val_interval=10000)
optim_wrapper = dict(optimizer=dict(lr=0.01, momentum=0.9, weight_decay=5e-4))
# The official PolyLR (furnace/engine/lr_policy.py): linear from 1e-4 to lr over the
# first 5,000 iterations (lr at 5,000), then lr * (1 - (t - 5,000) / 95,000) ** 0.9, which
# would reach 0 at 100K. mmengine's LinearLR and PolyLR reach their end value at
# iteration end - 1, so each end is one past the official one: the same lr every iteration.
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4 / 0.01, by_epoch=False, begin=0,
         end=warmup_iters + 1),
    dict(type='PolyLR', eta_min=0.0, power=0.9, by_epoch=False, begin=warmup_iters,
         end=max_iters + 1)]
