# mmdet's Faster R-CNN with FPN on all four stages of the DetNAS supernet.
_base_ = ['mmdet::_base_/models/faster-rcnn_r50_fpn.py']
model = dict(
    backbone=dict(_delete_=True, type='DetNASSuperNet', variant='small', out_indices=(0, 1, 2, 3)),
    neck=dict(in_channels=[64, 160, 320, 640]))
