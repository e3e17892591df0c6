# detnas_supernet_imagenet.py on the built-in toy classification set: 4 shape
# classes at 64 px, 100 iterations. Under a minute on 2 CPU cores:
#   python tools/make_toy_data.py imagenet data/toy_imagenet
#   python tools/train.py configs/detnas/detnas_supernet_imagenet_toy.py
# writes work_dirs/detnas_supernet_imagenet_toy/classifier_weights.pth, which
# detnas_retinanet_toy_pretrained.py loads into RetinaNet's supernet.
_base_ = ['./detnas_supernet_imagenet.py']

data_root = 'data/toy_imagenet/'
image_size = 64
batch_size = 16
max_iters = 100

model = dict(num_classes=4, dropout=0.0)

train_dataloader = dict(
    batch_size=batch_size, num_workers=0, persistent_workers=False, pin_memory=False,
    dataset=dict(data_root=data_root, image_size=image_size))
val_dataloader = dict(
    batch_size=batch_size, num_workers=0, persistent_workers=False, pin_memory=False,
    dataset=dict(data_root=data_root, image_size=image_size))
test_dataloader = val_dataloader

train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
# A batch of 16 needs a much smaller lr (at 0.1 the loss climbs) and a short warm-up.
optim_wrapper = dict(optimizer=dict(lr=0.02))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=10),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=10, end=max_iters),
]
auto_scale_lr = dict(base_batch_size=batch_size)

default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1, save_last=True))
env_cfg = dict(cudnn_benchmark=False)
