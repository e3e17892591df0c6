# mmseg's DeepLabv3 (ASPP, rates 6/12/18 at output stride 16) with FNA's super network
# as backbone: a MobileNetV2 seed deepened to 4,4,6,6,4,1 searchable layers (the depths
# of the official segmentation net_config), the last stage dilated instead of strided.
_base_ = ['mmseg::_base_/models/deeplabv3_r50-d8.py']
norm_cfg = dict(type='BN', requires_grad=True)  # SyncBN: set it and run under torchrun on GPUs
model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True, type='FNASuperNet',
        seed=dict(name='mobilenetv2_100', weights=None),
        depths=(4, 4, 6, 6, 4, 1), kernel_sizes=(3, 5, 7), expansions=(3, 6),
        out_indices=(4,), output_stride=16),
    decode_head=dict(in_channels=320, in_index=0, channels=256, dilations=(1, 6, 12, 18),
                     norm_cfg=norm_cfg),
    auxiliary_head=None)
