# RetinaNet with FNA's super network as backbone (Fang et al., ICLR 2020; official
# configs/fna_retinanet_fpn_search.py): a MobileNetV2 seed deepened to 4,4,4,4,4,1
# searchable layers, features of strides 4-32 (24/32/96/320 channels) into an FPN
# that starts at stride 8 and adds two extra levels on its input (P3-P7).
_base_ = ['mmdet::_base_/models/retinanet_r50_fpn.py']
model = dict(
    backbone=dict(
        _delete_=True, type='FNASuperNet',
        # weights: a local file of the seed's timm weights; None trains from timm's init.
        seed=dict(name='mobilenetv2_100', weights=None),
        depths=(4, 4, 4, 4, 4, 1), kernel_sizes=(3, 5, 7), expansions=(3, 6),
        out_indices=(1, 2, 3, 4)),
    neck=dict(in_channels=[24, 32, 96, 320], start_level=1, add_extra_convs='on_input'),
    # The official search's box loss too (train_cfg smoothl1_beta=0.11, weight 1).
    bbox_head=dict(loss_bbox=dict(type='SmoothL1Loss', beta=0.11, loss_weight=1.0)))
