# autogan_cifar10_train.py shrunk for 2 CPU cores: the found generator (by default the
# published autogan_cifar10_a) trained on the toy CIFAR-10 at gf 32 / df 32, 3 epochs
# of 63 D steps (about 40 G steps), evaluated on 500 images through the toy classifier
# instead of Inception. A few minutes on 2 CPU cores:
#   python tools/make_toy_data.py cifar10 data/toy_cifar10
#   python tools/train_toy_classifier.py data/toy_cifar10
#   python tools/train.py configs/autogan/autogan_cifar10_train_toy.py
#   python tools/train.py configs/autogan/autogan_cifar10_train_toy.py \
#       --cfg-options model.generator.arch=work_dirs/autogan_toy/best_arch.json
#   python tools/test.py configs/autogan/autogan_cifar10_train_toy.py \
#       work_dirs/autogan_cifar10_train_toy/epoch_3.pth
_base_ = ['./autogan_cifar10_train.py']

data_root = 'data/toy_cifar10'
latent_dim = 32
num_eval_images = 500
max_epochs = 3
val_interval = 1
extractor = dict(type='ToyClassifier', weights_path=data_root + '/toy_classifier.pth')

model = dict(
    generator=dict(arch='autogan_cifar10_a', gf_dim=32, latent_dim=latent_dim),
    discriminator=dict(df_dim=32),
    gen_batch_size=32,
    # The official 0.001 averages over ~1000 G steps of 50,000; this run has ~40.
    ema_momentum=0.1)

real_images = dict(type='GANImages', source='cifar10_batches', data_root=data_root, split='train',
                   img_size=32)
train_dataloader = dict(batch_size=16, num_workers=0, persistent_workers=False, pin_memory=False,
                        dataset=real_images)
noise = dict(num_images=num_eval_images, latent_dim=latent_dim)
val_dataloader = dict(dataset=noise)
test_dataloader = dict(dataset=noise)
val_evaluator = dict(extractor=extractor, real_data=real_images)
test_evaluator = val_evaluator

train_cfg = dict(max_epochs=max_epochs, val_interval=val_interval)
default_hooks = dict(logger=dict(interval=20),
                     checkpoint=dict(interval=val_interval, max_keep_ckpts=1))
custom_hooks = [dict(type='SampleGridHook', num_images=64, nrow=8, seed=0),
                dict(type='WeightsOnlyCheckpointHook')]
log_processor = dict(window_size=10)
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
