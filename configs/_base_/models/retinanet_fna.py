# RetinaNet with an FNA-adapted backbone: the searched timm network (features_only),
# started from the seed weights remapped into it (adapted_weights.pth of the search).
_base_ = ['mmdet::_base_/models/retinanet_r50_fpn.py']
search_dir = 'work_dirs/fna_retinanet_coco'
model = dict(
    backbone=dict(
        _delete_=True, type='FNABackbone', arch=search_dir + '/best_arch.json',
        weights=search_dir + '/adapted_weights.pth', out_indices=(1, 2, 3, 4)),
    neck=dict(in_channels=[24, 32, 96, 320], start_level=1, add_extra_convs='on_input'),
    # The official box loss (train_cfg smoothl1_beta=0.11, weight 1), not mmdet 3's L1.
    bbox_head=dict(loss_bbox=dict(type='SmoothL1Loss', beta=0.11, loss_weight=1.0)))
