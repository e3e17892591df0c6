# FNA's seed on the built-in toy classification set: timm's mobilenetv2_100,
# trained from timm's initialisation on 4 shape classes at 64 px (nothing is
# downloaded). A few minutes on 2 CPU cores (2 min 53 s and 14 min measured while other jobs loaded them):
#   python tools/make_toy_data.py imagenet data/toy_imagenet_seed --per-class 256 --num-val-per-class 32
#   python tools/train.py configs/fna/mobilenetv2_seed_toy.py
# writes work_dirs/mobilenetv2_seed_toy/seed_weights.pth: the network's weights
# under timm's own keys, with a 4-way classifier, which FNA reads as its seed
#   seed=dict(name='mobilenetv2_100', weights='work_dirs/mobilenetv2_seed_toy/seed_weights.pth')
# (backbones.fna.seed.create_seed; with another --work-dir W, W/seed_weights.pth).
# The real seed is mobilenetv2_100 trained on ImageNet: point the same settings
# at your own timm weights file instead. The iter_*.pth checkpoints are for
# resuming only: torch.load's weights_only default refuses them.
default_scope = 'mmdet'
custom_imports = dict(imports=['backbones', 'backbones.timm_classifier', 'nas_tasks.checkpoint'],
                      allow_failed_imports=False)

# The default toy set's 32 images a class are memorised long before the network
# generalises; 256 are not.
data_root = 'data/toy_imagenet_seed/'
image_size = 64
batch_size = 16
max_iters = 300

model = dict(type='TimmClassifier', model_name='mobilenetv2_100', num_classes=4,
             label_smoothing=0.1, zero_classifier=True)

train_dataloader = dict(
    batch_size=batch_size,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    # No ImageNet augmentation: its random-resized crop (8-100% of the area) often
    # cuts a toy image's small shape, and so its label, out of the crop.
    dataset=dict(type='ImageFolderClassification', data_root=data_root, split='train',
                 image_size=image_size, train=False))
val_dataloader = dict(
    batch_size=batch_size,
    num_workers=0,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ImageFolderClassification', data_root=data_root, split='val',
                 image_size=image_size, train=False))
test_dataloader = val_dataloader
val_evaluator = dict(type='TopKAccuracy', topk=(1,))
test_evaluator = val_evaluator

train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# From scratch in a few hundred steps of batch 16, AdamW at 5e-3 learnt the
# shapes fastest of what was tried (SGD 0.01-0.1, AdamW 2e-3 and 1e-2).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-3, weight_decay=0.01),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
warmup_iters = 30
param_scheduler = [
    dict(type='LinearLR', start_factor=0.04, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=False, begin=warmup_iters,
         end=max_iters),
]

custom_hooks = [
    dict(type='ExportWeightsHook', filename='seed_weights.pth', prefix='model.'),
    dict(type='WeightsOnlyCheckpointHook'),
]
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=20),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=1,
                    save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'))
log_processor = dict(type='LogProcessor', window_size=20, by_epoch=False)
log_level = 'INFO'
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends, name='visualizer')
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))
randomness = dict(seed=0)
load_from = None
resume = False
