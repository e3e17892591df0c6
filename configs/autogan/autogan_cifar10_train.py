# Train a found AutoGAN generator from scratch on CIFAR-10 with the official final
# settings (reference sheet 3.3; VITA-Group/AutoGAN exps/autogan_cifar10_a.sh):
# gf 256, df 128, latent 128, Adam 2e-4 betas (0, 0.9) for G and D, no LR decay,
# hinge loss, n_critic 5, D batch 64, G batch 128, xavier init, EMA of G (0.999)
# after every G step. One runner iteration is one D step: 320 epochs of 782 batches
# are 250,240 D steps, the official 50,000 G iterations (rounded up to whole epochs).
# Every 20 epochs: IS (10 splits) and FID of 50,000 images of the EMA generator,
# FID against the CIFAR-10 train set, the best checkpoint kept by FID, and a
# sample grid in work_dirs/autogan_cifar10_train/samples/iter_N.png.
#   python tools/train.py configs/autogan/autogan_cifar10_train.py
#   python tools/train.py configs/autogan/autogan_cifar10_train.py \
#       --cfg-options model.generator.arch=work_dirs/autogan_cifar10/best_arch.json
#   python tools/test.py configs/autogan/autogan_cifar10_train.py \
#       work_dirs/autogan_cifar10_train/best_FID_epoch_N.pth
# Local files, nothing is downloaded:
# - data/cifar10/cifar-10-batches-py/ (the python version of CIFAR-10);
# - Inception weights: torch-fidelity's weights-inception-2015-12-05-6726825d.pth
#   (https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/) in data/weights/.
# The real FID statistics are computed once from the train set and cached as
# data/cifar10/fid_stats_inception-v3-compat_train_32px.npz; to use TTUR's
# fid_stats_cifar10_train.npz instead, set val_evaluator.fid_stats (and test_evaluator's).
# Under torchrun (--launcher pytorch) each process takes batches of 64 real images and
# 128 latent vectors: set train_dataloader.batch_size=64/N and model.gen_batch_size=128/N
# for the official total batches. Every process draws its own noise (docs/autogan.md).
custom_imports = dict(imports=['gan', 'nas_tasks.checkpoint'], allow_failed_imports=False)

data_root = 'data/cifar10'
source = 'cifar10'
img_size = 32
latent_dim = 128
inception = dict(type='InceptionV3Compat',
                 weights_path='data/weights/weights-inception-2015-12-05-6726825d.pth')
num_eval_images = 50_000
max_epochs = 320
val_interval = 20
adam = dict(type='Adam', lr=2e-4, betas=(0.0, 0.9))

model = dict(
    type='AutoGANTrainingModel',
    # A preset ('autogan_cifar10_a', '_b', '_c') or a search's best_arch.json.
    generator=dict(type='AutoGANGenerator', arch='autogan_cifar10_a', gf_dim=256,
                   latent_dim=latent_dim, bottom_width=img_size // 8),
    discriminator=dict(type='AutoGANDiscriminator', df_dim=128),
    n_critic=5,
    gen_batch_size=128,
    ema_momentum=0.001)
# Under torchrun G and D are wrapped one by one, as each has its own optimiser.
model_wrapper_cfg = dict(type='MMSeparateDistributedDataParallel', broadcast_buffers=False,
                         find_unused_parameters=False)

real_images = dict(type='GANImages', source=source, data_root=data_root, split='train',
                   img_size=img_size)
train_dataloader = dict(
    batch_size=64, num_workers=8, persistent_workers=True, pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=real_images)
eval_dataloader = dict(
    batch_size=100, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='LatentNoise', num_images=num_eval_images, latent_dim=latent_dim, seed=0))
val_dataloader = eval_dataloader
test_dataloader = eval_dataloader
val_evaluator = dict(type='ISFIDMetric', extractor=inception, real_data=real_images,
                     fid_stats=None, splits=10)
test_evaluator = val_evaluator

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=val_interval)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(constructor='PerNetworkOptimWrapperConstructor',
                     generator=dict(type='OptimWrapper', optimizer=adam),
                     discriminator=dict(type='OptimWrapper', optimizer=adam))
param_scheduler = None  # no LR decay: the official scripts leave it off

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=100),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=val_interval, max_keep_ckpts=1,
                    save_last=True, save_best='FID', rule='less'),
    sampler_seed=dict(type='DistSamplerSeedHook'))
custom_hooks = [dict(type='SampleGridHook', num_images=100, nrow=10, seed=0),
                dict(type='WeightsOnlyCheckpointHook')]
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)
log_level = 'INFO'
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends, name='visualizer')
env_cfg = dict(cudnn_benchmark=True, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'))
randomness = dict(seed=12345)
load_from = None
resume = False
