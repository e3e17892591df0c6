# DeepLabv3 as FNA builds it (JaminFong/FNA fna_seg network.py): the FNA-adapted backbone
# (timm features_only, output stride 16, the dilated stage's first block dilated too),
# started from the seed weights remapped into it (adapted_weights.pth of the search), and
# FNA's ASPP head: separable atrous branches (rates 6/12/18), image pooling, a 1x1 conv
# over the concatenation (segmentation/fna/separable_aspp_head.py).
_base_ = ['mmseg::_base_/models/deeplabv3_r50-d8.py']
norm_cfg = dict(type='BN', requires_grad=True)  # SyncBN under torchrun on GPUs
search_dir = 'work_dirs/fna_deeplabv3_cityscapes'
model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True, type='FNABackbone', arch=search_dir + '/best_arch.json',
        weights=search_dir + '/adapted_weights.pth', out_indices=(4,), output_stride=16),
    decode_head=dict(type='SeparableASPPHead', in_channels=320, in_index=0, channels=256,
                     dilations=(1, 6, 12, 18), norm_cfg=norm_cfg,
                     # The official network upsamples its logits with align_corners=True
                     # (its 769x769 crops are 16k+1 pixels, DeepLab's convention).
                     align_corners=True),
    auxiliary_head=None)
