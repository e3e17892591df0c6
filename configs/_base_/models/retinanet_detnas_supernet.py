# mmdet's RetinaNet with the DetNAS ShuffleNetV2-block supernet as backbone
# (small variant: 20 choice blocks, stage widths 64/160/320/640) and FPN on C3-C5.
_base_ = ['mmdet::_base_/models/retinanet_r50_fpn.py']
model = dict(
    backbone=dict(_delete_=True, type='DetNASSuperNet', variant='small', out_indices=(0, 1, 2, 3)),
    neck=dict(in_channels=[64, 160, 320, 640]))
