# DetNAS search settings of the paper on COCO: the supernet (initialised from
# its ImageNet pre-training, see the search configs) is trained on the
# search-train part of train2017, one uniform path per iteration; evolution
# (population 50, 20 generations, top 10, 20 mutations with p=0.1, 20
# crossovers) under a 300M FLOPs limit (backbone FLOPs at 224x224, the paper's
# convention); candidates are ranked by bbox mAP on the held-out part of
# train2017 after BN recalibration. val2017 is left for the fine-tuned result.
# Write the two parts once (the same command always writes the same files):
#   python tools/split_coco.py data/coco/annotations/instances_train2017.json \
#       --held-out 5000 --seed 0
_base_ = [
    './datasets/coco_search.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]

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
