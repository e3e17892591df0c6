# The derived Auto-DeepLab network (Liu et al., CVPR 2019, section 4.3): the
# searched backbone with a DeepLabv3+ decoder: ASPP on the last cell's feature
# (256 channels, atrous rates for its output stride) and a decoder that fuses
# the stride-4 feature (48 channels). AutoDeepLabSegmentor fills in the head's
# input channels and rates from the arch; a searched arch is named with
#   --cfg-options model.backbone.arch=WORK_DIR/best_arch.json
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='AutoDeepLabSegmentor',
    data_preprocessor=data_preprocessor,
    backbone=dict(type='AutoDeepLabBackbone', arch='autodeeplab_s'),
    decode_head=dict(
        type='AutoDeepLabHead',
        channels=256,
        c1_channels=48,
        dropout_ratio=0.1,
        num_classes=19,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
# Under torchrun every BN, the backbone's too, is synchronised across GPUs
# (the paper trains with synchronised BN); on one process SyncBN is plain BN.
sync_bn = 'torch'
