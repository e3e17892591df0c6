# Parameter adaptation of the network found by fna_retinanet_coco.py, with the official
# retrain settings (JaminFong/FNA configs/fna_retinanet_fpn_retrain.py): RetinaNet (box
# loss SmoothL1 with beta 0.11, from the model base), the adapted backbone started from
# the seed remapped into it, 12 epochs, SGD lr 0.05 for a total batch of 32 (4 images x
# 8 GPUs; mmdet's auto_scale_lr rescales for another), weight decay 5e-5, clipping 35, a
# linear warm-up from 1/3 over 500 iterations, steps at 8 and 11, SyncBN. Reports
# val2017 bbox mAP.
#   torchrun --nproc-per-node 8 tools/train.py configs/fna/retinanet_fna_finetune_coco.py \
#       --launcher pytorch
_base_ = [
    '../_base_/models/retinanet_fna.py',
    '../_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
    '../_base_/nas_tasks_runtime.py',
]
search_dir = 'work_dirs/fna_retinanet_coco'
model = dict(backbone=dict(arch=search_dir + '/best_arch.json',
                           weights=search_dir + '/adapted_weights.pth'))
train_dataloader = dict(batch_size=4)
optim_wrapper = dict(optimizer=dict(lr=0.05, momentum=0.9, weight_decay=5e-5),
                     clip_grad=dict(max_norm=35, norm_type=2))
auto_scale_lr = dict(enable=True, base_batch_size=32)
sync_bn = 'torch'
# The official warm-up (mmcv's linear, warmup_ratio 1/3, the full lr at iteration 500;
# mmengine's LinearLR reaches it at end - 1), then x0.1 at epochs 8 and 11.
param_scheduler = [
    dict(type='LinearLR', start_factor=1 / 3, by_epoch=False, begin=0, end=501),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1)]
