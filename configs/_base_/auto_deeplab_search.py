# The Auto-DeepLab search task with the paper's settings (Liu et al., CVPR 2019,
# section 5.1): L = 12 layers, B = 5 blocks, F = 8, batch 2, 40 epochs on two
# disjoint halves of the training set; architecture updates (Adam, lr 3e-3,
# weight decay 1e-3) from epoch 20; weights by SGD (momentum 0.9, cosine lr
# 0.025 -> 0.001, weight decay 3e-4); first-order updates. A dataset base
# (datasets/cityscapes.py or toy_cityscapes.py) supplies the data.
differentiable_search = dict(
    type='AutoDeepLabSearch',
    network=dict(num_layers=12, filter_multiplier=8, block_multiplier=5, with_cp=False),
    data_preprocessor=dict(
        type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size=(321, 321)),
    trainer=dict(
        epochs=40,
        arch_start_epoch=20,
        # Each half's loader (mmengine's Runner.build_dataloader, without a dataset).
        dataloader=dict(
            batch_size=2,
            num_workers=4,
            sampler=dict(type='DefaultSampler', shuffle=True),
            collate_fn=dict(type='pseudo_collate')),
        weight_optimizer=dict(type='SGD', lr=0.025, momentum=0.9, weight_decay=3e-4),
        # The paper's cosine 0.025 -> 0.001 over the search, stepped per epoch (as DARTS).
        param_scheduler=dict(type='CosineAnnealingLR', eta_min=1e-3, by_epoch=True),
        arch_optimizer=dict(type='Adam', lr=3e-3, betas=(0.9, 0.999), weight_decay=1e-3),
        grad_clip=5.0,
        second_order=False,
        log_interval=50),
    # The derived network is Auto-DeepLab-S (F = 20); its FLOPs are counted on
    # a whole 1024x2048 image, as the paper's table reports them.
    export_filter_multiplier=20,
    cost_input_size=(1024, 2048),
    # mIoU of the search network on the val split after every eval_interval
    # epochs (0: only at the end).
    eval_interval=0,
    seed=0)
