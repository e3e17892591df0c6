# NAS-FPN search on the built-in toy data: a REINFORCE/PPO controller samples
# pyramid architectures; each is trained briefly inside a small RetinaNet
# (the proxy task) and rewarded with its COCO bbox AP on the held-out split.
#   python tools/make_toy_data.py coco data/toy_coco
#   python tools/search.py configs/nas_fpn/nas_fpn_retinanet_toy.py --work-dir work_dirs/nas_fpn_toy
_base_ = [
    '../_base_/models/retinanet_nas_fpn_proxy.py',
    '../_base_/datasets/toy_coco_search.py',
    'mmdet::_base_/default_runtime.py',
]

# Proxy detector: a half-width ResNet-18 and a narrow neck and head keep one
# CPU training step cheap; 2 classes as in the toy data.
width = 48
model = dict(
    backbone=dict(base_channels=32),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=width),
    bbox_head=dict(num_classes=2, in_channels=width, feat_channels=width, stacked_convs=2))

# Proxy schedule (128 px images, batch 4).
proxy_iters = 120
train_cfg = dict(type='IterBasedTrainLoop', max_iters=proxy_iters)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05),
    clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=20, end=proxy_iters, eta_min=1e-4),
]
train_dataloader = dict(sampler=dict(type='InfiniteSampler', shuffle=True))
default_hooks = dict(logger=dict(type='LoggerHook', interval=20))
log_processor = dict(by_epoch=False)

search_space = dict(type='NASFPNSpace')
estimator = dict(type='ProxyDetectionEstimator', cost_input_size=(128, 128))
strategy = dict(type='ReinforceController', num_steps=3, batch_size=4, ppo_clip=0.2)
search = dict(seed=0, score_name='bbox_mAP')

# tools/diagnose.py: is the proxy task's ranking right? As the NAS-FPN paper checks
# its proxy, K candidates spread over the reward range are trained again in the
# same proxy detector on the same data, for twice the iterations and with another
# seed, and scored on the held-out split the search ranked on. See docs/diagnostics.md.
diagnose_iters = 2 * proxy_iters
diagnose = dict(
    num_candidates=8,
    standalone=dict(
        type='DetectorStandaloneTraining',
        arch_in='neck',
        cfg_options=dict(
            train_cfg=dict(max_iters=diagnose_iters),
            param_scheduler=[
                dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=20),
                dict(type='CosineAnnealingLR', by_epoch=False, begin=20, end=diagnose_iters,
                     eta_min=1e-4)],
            # A checkpoint half-way, so a killed training continues from there.
            default_hooks=dict(checkpoint=dict(type='CheckpointHook', by_epoch=False,
                                               interval=proxy_iters, max_keep_ckpts=1)))))
