# DetNAS search settings of the paper: supernet fine-tuned on COCO train2017
# one uniform path per iteration; evolution (population 50, 20 generations,
# top 10, 20 mutations with p=0.1, 20 crossovers) under a 300M FLOPs limit
# (backbone FLOPs at 224x224, the paper's convention); candidates scored by
# bbox mAP on val2017 after BN recalibration.
search_space = dict(type='DetNASSpace', variant='small')
estimator = dict(
    type='OneShotDetectionEstimator',
    cost_model=dict(type='DetNASCostTable', variant='small', input_size=(224, 224)),
    bn_recalibration_batches=100)
strategy = dict(
    type='Evolution', population_size=50, max_generations=20, top_k=10,
    num_mutation=20, mutation_prob=0.1, num_crossover=20)
search = dict(seed=0, score_name='bbox_mAP', constraints=dict(flops=dict(max=300e6)))

# The Runner's own validation is replaced by the search's candidate evaluation.
train_cfg = dict(val_interval=10**6)
# Supernet initialised from ImageNet pre-training (configs/detnas/detnas_supernet_imagenet.py).
model = dict(backbone=dict(init_cfg=dict(
    type='Pretrained', checkpoint='checkpoints/detnas_supernet_small_imagenet.pth',
    prefix='backbone.')))
