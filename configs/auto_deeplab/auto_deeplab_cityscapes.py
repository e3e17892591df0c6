# Auto-DeepLab search on Cityscapes with the paper's settings (see
# _base_/auto_deeplab_search.py): random 321x321 crops of the 1024x2048
# training images, batch 2.
#   python tools/convert_cityscapes.py data/cityscapes
#   python tools/search.py configs/auto_deeplab/auto_deeplab_cityscapes.py
#   torchrun --nproc_per_node 4 tools/search.py configs/auto_deeplab/auto_deeplab_cityscapes.py \
#       --launcher pytorch
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
