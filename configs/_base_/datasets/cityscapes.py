# Real Cityscapes (gtFine). Point data_root at your copy (it is never downloaded):
#   --cfg-options data_root=/path/to/cityscapes/  or edit data_root below.
# Layout: leftImg8bit/{train,val}/<city>/*_leftImg8bit.png and
#         gtFine/{train,val}/<city>/*_gtFine_labelIds.png from cityscapes-dataset.com;
# then write the *_gtFine_labelTrainIds.png maps that CityscapesDataset reads with:
#   python tools/convert_cityscapes.py /path/to/cityscapes --nproc 8
# 19 classes, 255 = ignored. 769x769 crops: the DeepLab / Auto-DeepLab fine-tuning crop.
dataset_type = 'CityscapesDataset'
data_root = 'data/cityscapes/'
crop_size = (769, 769)
image_scale = (2048, 1024)  # (width, height) of the Cityscapes images

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=image_scale, ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    # After Resize: the ground truth keeps its full resolution.
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root,
                 data_prefix=dict(img_path='leftImg8bit/train', seg_map_path='gtFine/train'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root,
                 data_prefix=dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
