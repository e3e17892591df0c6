# DeepLabv3 as FNA builds it (FNA's separable ASPP head, rates 6/12/18 at output stride 16;
# see deeplabv3_fna.py) with FNA's super network as backbone: a MobileNetV2 seed deepened
# to 4,4,6,6,4,1 searchable layers (the depths of the official segmentation net_config),
# the last stage dilated instead of strided.
_base_ = ['mmseg::_base_/models/deeplabv3_r50-d8.py']
norm_cfg = dict(type='BN', requires_grad=True)  # SyncBN: set it and run under torchrun on GPUs
model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True, type='FNASuperNet',
        seed=dict(name='mobilenetv2_100', weights=None),
        depths=(4, 4, 6, 6, 4, 1), kernel_sizes=(3, 5, 7), expansions=(3, 6),
        out_indices=(4,), output_stride=16),
    decode_head=dict(type='SeparableASPPHead', in_channels=320, in_index=0, channels=256,
                     dilations=(1, 6, 12, 18), norm_cfg=norm_cfg,
                     # The official network upsamples its logits with align_corners=True
                     # (its 769x769 crops are 16k+1 pixels, DeepLab's convention).
                     align_corners=True),
    auxiliary_head=None)
