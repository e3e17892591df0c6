# Auto-DeepLab on the built-in toy Cityscapes layout: a short bilevel search of
# a small trellis (6 layers, F = 4) on 64x64 crops, then decoding of the cell
# genotype and the Viterbi path. About 4 minutes on 2 CPU cores:
#   python tools/make_toy_data.py cityscapes data/toy_cityscapes
#   python tools/search.py configs/auto_deeplab/auto_deeplab_toy.py
_base_ = ['../_base_/datasets/toy_cityscapes.py', '../_base_/auto_deeplab_search.py']

crop_size = (64, 64)
differentiable_search = dict(
    network=dict(num_layers=6, filter_multiplier=4, block_multiplier=5),
    data_preprocessor=dict(size=crop_size),
    trainer=dict(
        epochs=6,
        arch_start_epoch=3,
        dataloader=dict(num_workers=0),
        log_interval=2),
    eval_interval=3,
    # FLOPs of the derived Auto-DeepLab-S at the toy image size.
    cost_input_size=(64, 128))
# tools/diagnose.py CONFIG WORK_DIR --random N: the found cell and path against N random
# ones of this space (a random cell, a path uniform over the trellis's valid paths), each
# trained from scratch by auto_deeplab_finetune_toy.py (F = 8, 200 iterations) on the
# search's training images and scored by the search's mIoU on the toy val split.
# See docs/auto_deeplab.md and docs/diagnostics.md.
diagnose = dict(
    random_architectures=dict(type='AutoDeepLabRandomArchitectures'),
    standalone=dict(type='AutoDeepLabFineTuning',
                    train_config='{{fileDirname}}/auto_deeplab_finetune_toy.py'))
