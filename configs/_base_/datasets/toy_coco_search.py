# The toy set as a search uses it: train on train/, rank candidates on the
# held-out split heldout/, and leave val/ to report the found model's results
# (as a COCO search ranks on a held-out part of train2017, not on val2017).
_base_ = ['toy_coco_detection.py']
data_root = 'data/toy_coco/'  # the base's; data_root=... on the command line moves both
val_dataloader = dict(dataset=dict(ann_file='annotations/instances_heldout.json',
                                   data_prefix=dict(img='heldout/')))
val_evaluator = dict(ann_file=data_root + 'annotations/instances_heldout.json')
