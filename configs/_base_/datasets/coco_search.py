# COCO as a search uses it: train on the search-train part of train2017, score on its
# held-out part, and leave val2017 to report the fine-tuned result. Write the parts once:
#   python tools/split_coco.py data/coco/annotations/instances_train2017.json \
#       --held-out 5000 --seed 0
_base_ = ['coco_detection.py']
train_dataloader = dict(dataset=dict(ann_file=_base_.search_train_ann_file))
val_dataloader = dict(dataset=dict(ann_file=_base_.search_heldout_ann_file,
                                   data_prefix=dict(img='train2017/')))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=_base_.data_root + _base_.search_heldout_ann_file)
test_evaluator = val_evaluator
