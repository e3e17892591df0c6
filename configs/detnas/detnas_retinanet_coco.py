# DetNAS with RetinaNet on COCO, the paper's search settings.
# Supernet: ImageNet-pretrained weights (see detnas_supernet_imagenet.py),
# fine-tuned on COCO train2017 one uniform path per iteration; candidates are
# scored by bbox mAP on val2017 after BN recalibration.
# Point data_root at your COCO copy:  --cfg-options data_root=/path/to/coco/
_base_ = [
    '../_base_/models/retinanet_detnas_supernet.py',
    '../_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]

model = dict(backbone=dict(init_cfg=dict(
    type='Pretrained', checkpoint='checkpoints/detnas_supernet_small_imagenet.pth',
    prefix='backbone.')))
optim_wrapper = dict(optimizer=dict(lr=0.01))
# The Runner's validation is replaced by the search's candidate evaluation.
train_cfg = dict(val_interval=10**6)

search_space = dict(type='DetNASSpace', variant='small')
estimator = dict(
    type='OneShotDetectionEstimator',
    cost_model=dict(type='DetNASCostTable', variant='small', input_size=(224, 224)),
    bn_recalibration_batches=100)
strategy = dict(
    type='Evolution', population_size=50, max_generations=20, top_k=10,
    num_mutation=20, mutation_prob=0.1, num_crossover=20)
search = dict(seed=0, score_name='bbox_mAP', constraints=dict(flops=dict(max=300e6)))
