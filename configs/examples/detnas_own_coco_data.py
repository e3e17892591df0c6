# The toy DetNAS search on your own COCO-format data: only the config changes.
# Split your training annotations once into a search-train part and a held-out
# part that ranks candidates (keep your val/test set for reporting):
#   python tools/split_coco.py /data/mine/annotations/train.json --held-out 0.2 --seed 0
# then edit data_root, the file names and the classes below, and run
#   python tools/search.py configs/examples/detnas_own_coco_data.py --work-dir work_dirs/mine
_base_ = ['../detnas/detnas_retinanet_toy.py']

data_root = '/data/mine/'
classes = ('cat', 'dog', 'bird')  # as named in your annotation file's categories
images = 'images/'                 # the folder the annotation file's file_name entries are in

train_dataloader = dict(dataset=dict(
    data_root=data_root, metainfo=dict(classes=classes),
    ann_file='annotations/train_search_train.json', data_prefix=dict(img=images)))
val_dataloader = dict(dataset=dict(
    data_root=data_root, metainfo=dict(classes=classes),
    ann_file='annotations/train_search_heldout.json', data_prefix=dict(img=images)))
val_evaluator = dict(ann_file=data_root + 'annotations/train_search_heldout.json')
# A search never tests; pointing the test split at the held-out part keeps the
# config free of the toy data's paths and classes.
test_dataloader = val_dataloader
test_evaluator = val_evaluator
# The head predicts one score per class: a mismatch is refused before training.
model = dict(bbox_head=dict(num_classes=len(classes)))
