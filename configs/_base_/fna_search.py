# FNA's architecture adaptation, as the official search runs it (JaminFong/FNA
# configs/fna_retinanet_fpn_search.py): weight steps on one sampled path (uniform
# during the warm-up, then drawn from softmax(alpha)), first-order architecture steps
# over every candidate weighted by softmax(alpha); SGD (momentum 0.9, clipping 35) for
# the weights, Adam 3e-4 (0.5, 0.999) wd 1e-3 for alpha; the architecture loss adds
# 0.02 * log10(expected MAdds in G) of the searchable layers. A task config sets the
# type (FNADetectionSearch / FNASegmentationSearch), the epochs, the batch and the
# image size the MAdds are counted at.
differentiable_search = dict(
    trainer=dict(
        dataloader=dict(num_workers=2, persistent_workers=True,
                        sampler=dict(type='DefaultSampler', shuffle=True),
                        collate_fn=dict(type='pseudo_collate')),
        weight_optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=1e-4),
        arch_optimizer=dict(type='Adam', lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3),
        grad_clip=35.0,
        log_interval=50),
    cost=dict(metric='madds', weight=0.02, log_base=10),
    seed=0)
