# DetNAS on the built-in toy data: supernet training inside RetinaNet, then
# evolutionary search scored by COCO bbox mAP on the held-out split.
# Runs in about 7 minutes on 2 CPU cores:
#   python tools/make_toy_data.py coco data/toy_coco
#   python tools/search.py configs/detnas/detnas_retinanet_toy.py --work-dir work_dirs/detnas_toy
_base_ = [
    '../_base_/models/retinanet_detnas_supernet.py',
    '../_base_/datasets/toy_coco_search.py',
    'mmdet::_base_/default_runtime.py',
]

# A narrow FPN and head keep a CPU step cheap; 2 classes as in the toy data.
model = dict(
    neck=dict(out_channels=64),
    bbox_head=dict(num_classes=2, in_channels=64, feat_channels=64, stacked_convs=2))

# Supernet training: one uniformly sampled path per iteration. Trained from
# scratch a weight-shared supernet learns far slower than one fixed network
# (measured: 300 iterations give a standalone backbone 0.33 mAP, the supernet's
# candidates 0.02), so it gets 1000 iterations and AdamW, which learned
# fastest from scratch here; candidates then reach about 0.02-0.10 mAP.
supernet_iters = 1000
train_cfg = dict(type='IterBasedTrainLoop', max_iters=supernet_iters)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05),
    clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=supernet_iters, eta_min=1e-4),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=25),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=250, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)

search_space = dict(type='DetNASSpace', variant='small')
estimator = dict(
    type='OneShotDetectionEstimator',
    cost_model=dict(type='DetNASCostTable', variant='small', input_size=(224, 224)),
    bn_recalibration_batches=4)
strategy = dict(
    type='Evolution', population_size=8, max_generations=4, top_k=3,
    num_mutation=3, mutation_prob=0.1, num_crossover=3)
search = dict(
    seed=0,
    score_name='bbox_mAP',
    # Backbone FLOPs at 224x224, the paper's convention for its 300M class.
    constraints=dict(flops=dict(max=300e6)))

# tools/diagnose.py: is the search's ranking right? K candidates spread over the
# score range are trained standalone (from scratch, in the fine-tuning config's
# detector and schedule, on the search's training split) and scored on the
# held-out split the search ranked on; the ablation scores them again without
# BN recalibration. See docs/diagnostics.md.
diagnose = dict(
    num_candidates=8,
    standalone=dict(
        type='DetectorStandaloneTraining',
        arch_in='backbone',
        train_config='{{fileDirname}}/retinanet_detnas_finetune_toy.py'),
    ablations=[dict(type='WithoutBNRecalibration')])
