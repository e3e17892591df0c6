# NAS-FPN search on COCO with the paper's proxy task: RetinaNet with a small
# ResNet backbone (ResNet-18 here, the smallest ResNet in mmdet; the paper uses a
# ResNet-10), 512x512 input, 10 epochs of training on the search-train part of
# train2017, rewarded with bbox AP on the held-out part of train2017; the
# controller is trained with PPO. val2017 reports only the final result
# (retinanet_nas_fpn_finetune_coco.py). Split train2017 once, then search:
#   python tools/split_coco.py /path/to/coco/annotations/instances_train2017.json \
#       --held-out 5000 --seed 0
#   python tools/search.py configs/nas_fpn/nas_fpn_retinanet_coco.py \
#       --cfg-options data_root=/path/to/coco/ --work-dir work_dirs/nas_fpn_coco
# Under torchrun every rank trains its own share of each controller batch.
_base_ = [
    '../_base_/models/retinanet_nas_fpn_proxy.py',
    '../_base_/datasets/coco_detection.py',
    'mmdet::_base_/default_runtime.py',
]

image_size = (512, 512)
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    # ImageNet weights from a local file (nothing is downloaded): torchvision's
    # resnet18-f37072fd.pth. Remove init_cfg to train the proxy from scratch.
    backbone=dict(frozen_stages=1, init_cfg=dict(
        _delete_=True, type='Pretrained', checkpoint='checkpoints/resnet18-f37072fd.pth')),
    neck=dict(out_channels=256, stack_times=1),
    # mmdet's NAS-FPN recipe: shared head convs with per-level BN.
    bbox_head=dict(type='RetinaSepBNHead', num_ins=5, norm_cfg=norm_cfg),
    train_cfg=dict(assigner=dict(neg_iou_thr=0.5)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.8, 1.2), keep_ratio=True),
    dict(type='RandomCrop', crop_size=image_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
# Each candidate trains in one process on one device; workers are not kept
# alive between the thousands of proxy trainings.
train_dataloader = dict(
    batch_size=16, num_workers=4, persistent_workers=False,
    dataset=dict(ann_file=_base_.search_train_ann_file, pipeline=train_pipeline))
# The reward split: the held-out part of train2017 (tools/split_coco.py).
val_dataloader = dict(
    batch_size=8,
    dataset=dict(ann_file=_base_.search_heldout_ann_file, data_prefix=dict(img='train2017/'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=_base_.data_root + _base_.search_heldout_ann_file)
test_evaluator = val_evaluator

# Proxy schedule: 10 epochs.
proxy_epochs = 10
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=proxy_epochs)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=1e-4),
    paramwise_cfg=dict(norm_decay_mult=0, bypass_duplicate=True),
    clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=1000),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=proxy_epochs, eta_min=2e-4),
]
default_hooks = dict(logger=dict(type='LoggerHook', interval=100))

search_space = dict(type='NASFPNSpace')
estimator = dict(type='ProxyDetectionEstimator', cost_input_size=image_size)
# PPO on batches of 8 sampled pyramids; the controller may sample an
# architecture again (as the paper's does), which costs no second training.
strategy = dict(
    type='ReinforceController', num_steps=100, batch_size=8, ppo_clip=0.2, ppo_epochs=4,
    allow_repeats=True)
search = dict(seed=0, score_name='bbox_mAP')
