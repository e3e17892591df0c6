# DetNAS step 1: pre-train the ShuffleNetV2-block supernet (small variant) on
# ImageNet classification, one uniformly sampled path per iteration, with the
# Single Path One-Shot recipe: SGD lr 0.5 for a total batch of 1024, linear decay
# to 0, label smoothing 0.1, weight decay 4e-5 on conv/linear weights only.
# data/imagenet/ holds train/ and val/ as ImageFolder trees (<class>/<image>).
#   torchrun --nproc_per_node 8 tools/train.py configs/detnas/detnas_supernet_imagenet.py \
#       --launcher pytorch
# At the end it writes work_dirs/detnas_supernet_imagenet/classifier_weights.pth,
# the checkpoint the COCO search configs (detnas_retinanet_coco.py,
# detnas_faster_rcnn_coco.py) load into the detector's supernet with
#   init_cfg=dict(type='Pretrained', checkpoint=PATH, prefix='backbone.')
# (with another --work-dir W, search with --cfg-options
# model.backbone.init_cfg.checkpoint=W/classifier_weights.pth).
# The iter_*.pth checkpoints are for resuming only: torch.load's weights_only
# default refuses them.
# mmdet's scope, where the backbones are registered; mmdet's default_runtime.py
# is not a base because it adds a detection visualisation hook.
default_scope = 'mmdet'
# backbones/__init__.py does not import the classification module.
custom_imports = dict(imports=['backbones', 'detection', 'nas_tasks.checkpoint'],
                      allow_failed_imports=False)

data_root = 'data/imagenet/'
image_size = 224
num_classes = 1000
batch_size_per_gpu = 128  # x 8 GPUs = 1024, the batch lr 0.5 is for
max_iters = 150_000  # about 120 epochs of ImageNet at batch 1024

model = dict(
    type='BackboneClassifier',
    backbone=dict(type='DetNASSuperNet', variant='small', out_indices=(3,)),
    in_channels=640,
    num_classes=num_classes,
    dropout=0.1,
    label_smoothing=0.1)

train_dataloader = dict(
    batch_size=batch_size_per_gpu,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ImageFolderClassification', data_root=data_root, split='train',
                 image_size=image_size, train=True))
val_dataloader = dict(
    batch_size=batch_size_per_gpu,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ImageFolderClassification', data_root=data_root, split='val',
                 image_size=image_size, train=False))
test_dataloader = val_dataloader
val_evaluator = dict(type='TopKAccuracy', topk=(1, 5))
test_evaluator = val_evaluator

# Validation scores the path sampled for the last training iteration with BN
# statistics shared by all paths (no recalibration), so it underestimates that
# path: a sanity check of the shared weights, not an architecture ranking.
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=10_000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.5, momentum=0.9, weight_decay=4e-5),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
param_scheduler = [
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=0, end=max_iters),
]
# Enable (--cfg-options auto_scale_lr.enable=True) to scale lr to another total batch.
auto_scale_lr = dict(enable=False, base_batch_size=1024)

custom_hooks = [
    dict(type='UniformPathHook', space=dict(type='DetNASSpace', variant='small'),
         supernet_path='backbone', seed=0),
    dict(type='ExportWeightsHook', filename='classifier_weights.pth'),
    dict(type='WeightsOnlyCheckpointHook'),
]
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=100),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=10_000, max_keep_ckpts=3,
                    save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'))
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)
log_level = 'INFO'
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends, name='visualizer')
env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))
load_from = None
resume = False
