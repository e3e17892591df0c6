# FNA on the built-in toy Cityscapes: architecture adaptation of a MobileNetV2 seed as
# the backbone of mmseg's DeepLabv3 (output stride 16; a shallow super network,
# 3x3/5x5 kernels), then the seed remapped into the found network. Under a minute on
# 2 CPU cores (30 s measured):
#   python tools/make_toy_data.py imagenet data/toy_imagenet_seed --per-class 256 --num-val-per-class 32
#   python tools/train.py configs/fna/mobilenetv2_seed_toy.py      # the seed, a few minutes
#   python tools/make_toy_data.py cityscapes data/toy_cityscapes
#   python tools/search.py configs/fna/fna_deeplabv3_toy.py
# writes work_dirs/fna_deeplabv3_toy/{best_arch.json, adapted_weights.pth, remap_report.json},
# which deeplabv3_fna_finetune_toy.py fine-tunes.
_base_ = ['../_base_/models/deeplabv3_fna_supernet.py', '../_base_/datasets/toy_cityscapes.py',
          '../_base_/fna_search.py']

crop_size = (64, 64)  # the toy crop of toy_cityscapes.py
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        seed=dict(weights='work_dirs/mobilenetv2_seed_toy/seed_weights.pth'),
        depths=(2, 2, 3, 3, 2, 1), kernel_sizes=(3, 5)),
    decode_head=dict(channels=64))

differentiable_search = dict(
    type='FNASegmentationSearch',
    trainer=dict(epochs=6, arch_start_epoch=3,
                 dataloader=dict(batch_size=4, num_workers=0, persistent_workers=False),
                 weight_optimizer=dict(lr=0.01, weight_decay=4e-5), arch_optimizer=dict(lr=3e-3),
                 # The detection recipe's shape: a short warm-up, x0.1 at epochs 3 and 5.
                 param_scheduler=[
                     dict(type='LinearLR', start_factor=1 / 3, by_epoch=False, begin=0, end=3),
                     dict(type='MultiStepLR', by_epoch=True, milestones=[3, 5], gamma=0.1)],
                 log_interval=10),
    cost=dict(input_size=(64, 128)))

# tools/diagnose.py CONFIG WORK_DIR --random N: the adapted architecture against N
# random ones of this super network (a uniform op per searchable layer) and the seed's
# own, each remapped from the seed and trained by the parameter adaptation
# (deeplabv3_fna_finetune_toy.py) on the search's training images, scored by the search's
# mIoU on the toy val split. See docs/fna.md and docs/diagnostics.md.
diagnose = dict(
    random_architectures=dict(type='FNARandomArchitectures'),
    standalone=dict(type='FNAParameterAdaptation',
                    train_config='{{fileDirname}}/deeplabv3_fna_finetune_toy.py'))
