# Auto-DeepLab search on Cityscapes with the paper's settings (see
# _base_/auto_deeplab_search.py): random 321x321 crops of the 1024x2048
# training images, a total batch of 2 on one GPU (the paper searched on one P100),
# cosine lr by epoch. The total batch is batch_size x GPUs x accumulative_counts:
#   GPUs   dataloader.batch_size   accumulative_counts   total batch
#   1      2                       1                     2 (the paper's)
#   2      1                       1                     2 (the paper's)
#   4      1                       1                     4 (cannot go lower)
#   python tools/convert_cityscapes.py data/cityscapes
#   python tools/search.py configs/auto_deeplab/auto_deeplab_cityscapes.py
#   torchrun --nproc_per_node 2 tools/search.py configs/auto_deeplab/auto_deeplab_cityscapes.py \
#       --launcher pytorch --cfg-options differentiable_search.trainer.dataloader.batch_size=1
_base_ = ['../_base_/datasets/cityscapes.py', '../_base_/auto_deeplab_search.py']

crop_size = (321, 321)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(batch_size=2, num_workers=4, dataset=dict(pipeline=train_pipeline))
differentiable_search = dict(data_preprocessor=dict(size=crop_size))
# tools/diagnose.py CONFIG WORK_DIR --random N: the found network against N random cells
# and paths, each trained by Auto-DeepLab-S's recipe (autodeeplab_s_cityscapes.py: the
# paper's 500K iterations; shorten it with
# --cfg-options diagnose.standalone.cfg_options.train_cfg.max_iters=...) on the search's
# training split and scored by mIoU on its val split.
diagnose = dict(
    random_architectures=dict(type='AutoDeepLabRandomArchitectures'),
    standalone=dict(type='AutoDeepLabFineTuning',
                    train_config='{{fileDirname}}/autodeeplab_s_cityscapes.py'))
