# FNA's architecture adaptation, as the official search runs it (JaminFong/FNA
# configs/fna_retinanet_fpn_search.py): weight steps on one sampled path (uniform
# during the warm-up, then drawn from softmax(alpha)), first-order architecture steps
# over every candidate weighted by softmax(alpha); SGD (momentum 0.9, clipping 35) for
# the weights, Adam 3e-4 (0.5, 0.999) wd 1e-3 for alpha, whose gradient (the cost
# term's included) is clipped to norm 35 too (the official ArchOptimizerHook's
# grad_clip=dict(max_norm=35, norm_type=2)); the architecture loss adds
# 0.02 * log10(expected MAdds in G) of the searchable layers. The weight lr follows the
# official step schedule: a linear warm-up from 1/3 over the first 500 iterations
# (steps of the total batch; the full lr at iteration 500 as mmcv's, so end=501: mmengine's
# LinearLR reaches it at end - 1), then x0.1 at epochs 8 and 11 (of 14). A task config sets
# the type (FNADetectionSearch / FNASegmentationSearch), the epochs, the batch (with
# accumulative_counts, see fna_retinanet_coco.py) and the image size the MAdds are
# counted at.
differentiable_search = dict(
    trainer=dict(
        dataloader=dict(num_workers=2, persistent_workers=True,
                        sampler=dict(type='DefaultSampler', shuffle=True),
                        collate_fn=dict(type='pseudo_collate')),
        weight_optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=1e-4),
        param_scheduler=[
            dict(type='LinearLR', start_factor=1 / 3, by_epoch=False, begin=0, end=501),
            dict(type='MultiStepLR', by_epoch=True, milestones=[8, 11], gamma=0.1)],
        arch_optimizer=dict(type='Adam', lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3),
        grad_clip=35.0,
        arch_grad_clip=35.0,
        log_interval=50),
    cost=dict(metric='madds', weight=0.02, log_base=10),
    seed=0)
