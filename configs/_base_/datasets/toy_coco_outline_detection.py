# The toy COCO set with its shapes drawn as 3 px outlines, which the DetNAS toy
# search runs on (detnas_retinanet_toy.py says why):
#   python tools/make_toy_data.py coco data/toy_coco_outline --stroke 3 --num-train 128 --num-heldout 64
_base_ = ['toy_coco_detection.py']
data_root = 'data/toy_coco_outline/'
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
