# The AutoGAN STL-10 transfer (reference sheet 3.3; VITA-Group/AutoGAN
# exps/autogan_cifar10_a2stl10.sh): the generator found on CIFAR-10 (autogan_cifar10_a),
# not searched again, trained from scratch on STL-10 train+unlabeled (105,000 images)
# resized to 48 px, bottom_width 6, with the CIFAR-10 settings otherwise; IS and FID
# every 10 epochs. 153 epochs of 1,641 batches are 251,073 D steps, the official
# 50,000 G iterations rounded up to whole epochs.
#   python tools/train.py configs/autogan/autogan_stl10.py
#   python tools/test.py configs/autogan/autogan_stl10.py work_dirs/autogan_stl10/best_FID_epoch_N.pth
# data/stl10/stl10_binary/ is STL-10's binary version (torchvision's STL10, nothing is
# downloaded). The real FID statistics are computed once from the 48 px train+unlabeled
# images and cached as data/stl10/fid_stats_inception-v3-compat_train+unlabeled_48px.npz
# (the official code reads its own stl10_train_unlabeled_fid_stats_48.npz).
_base_ = ['./autogan_cifar10_train.py']

data_root = 'data/stl10'
img_size = 48
max_epochs = 153
val_interval = 10

model = dict(generator=dict(arch='autogan_cifar10_a', bottom_width=img_size // 8))

real_images = dict(type='GANImages', source='stl10', data_root=data_root,
                   split='train+unlabeled', img_size=img_size)
train_dataloader = dict(dataset=real_images)
val_evaluator = dict(real_data=real_images)
test_evaluator = val_evaluator

train_cfg = dict(max_epochs=max_epochs, val_interval=val_interval)
default_hooks = dict(checkpoint=dict(interval=val_interval))
