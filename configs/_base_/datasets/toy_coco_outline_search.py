# The outline toy set as a search uses it: train on train/, rank candidates on
# heldout/, leave val/ to report the found model's results (as toy_coco_search.py).
_base_ = ['toy_coco_outline_detection.py']
val_dataloader = dict(dataset=dict(ann_file='annotations/instances_heldout.json',
                                   data_prefix=dict(img='heldout/')))
val_evaluator = dict(ann_file=_base_.data_root + 'annotations/instances_heldout.json')
