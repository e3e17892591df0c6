# The built-in toy Cityscapes: python tools/make_toy_data.py cityscapes data/toy_cityscapes
# 64x128 (h x w) street scenes in the real Cityscapes layout and file names (train: aachen,
# bremen; val: frankfurt), 19 classes with 255 = ignored. The dataset type, folders and
# evaluator are those of cityscapes.py; only the sizes and the loaders differ.
_base_ = './cityscapes.py'
data_root = 'data/toy_cityscapes/'
crop_size = (64, 64)
image_scale = (128, 64)  # (width, height) of the toy images

# Restated: the base pipelines hold the full-size scale and crop.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    # Ratios from 1.0 only: an image smaller than the crop would give a smaller sample.
    dict(type='RandomResize', scale=image_scale, ratio_range=(1.0, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    num_workers=0, persistent_workers=False, sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
