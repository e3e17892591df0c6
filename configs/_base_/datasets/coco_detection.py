# Real COCO 2017. Point data_root at your copy (it is never downloaded):
#   --cfg-options data_root=/path/to/coco/  or edit data_root below.
# Layout: annotations/instances_{train,val}2017.json, train2017/, val2017/.
dataset_type = 'CocoDataset'
data_root = 'data/coco/'
# The loaders below train on train2017 and report on val2017 (fine-tuning).
# Search configs instead train on one part of train2017 and rank candidates on
# the other, held-out part, so val2017 never guides a search. The parts are
# written once by (the same command always writes the same files):
#   python tools/split_coco.py data/coco/annotations/instances_train2017.json \
#       --held-out 5000 --seed 0
search_train_ann_file = 'annotations/instances_train2017_search_train.json'
search_heldout_ann_file = 'annotations/instances_train2017_search_heldout.json'

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(type=dataset_type, data_root=data_root,
                 ann_file='annotations/instances_train2017.json',
                 data_prefix=dict(img='train2017/'),
                 filter_cfg=dict(filter_empty_gt=True, min_size=32), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root,
                 ann_file='annotations/instances_val2017.json', data_prefix=dict(img='val2017/'),
                 test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='PreciseCocoMetric',
                     ann_file=data_root + 'annotations/instances_val2017.json',
                     metric='bbox', format_only=False)
test_evaluator = val_evaluator
