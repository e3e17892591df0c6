# The NAS-FPN proxy detector: mmdet's RetinaNet with a ResNet-18 backbone (the
# smallest ResNet in mmdet; the paper's proxy uses a ResNet-10) and a
# SearchableNASFPN neck on C3-C5 plus P6, P7 by pooling. The search puts each
# candidate's arch into model.neck.arch; 'nas_fpn' is the published pyramid.
_base_ = ['mmdet::_base_/models/retinanet_r50_fpn.py']
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    # Every level's size must be exactly half the previous one, as in mmdet's
    # NAS-FPN configs.
    data_preprocessor=dict(pad_size_divisor=128),
    # Trained from scratch unless a config gives init_cfg: nothing is downloaded.
    backbone=dict(depth=18, frozen_stages=-1, norm_eval=False, init_cfg=None),
    neck=dict(
        _delete_=True,
        type='SearchableNASFPN',
        arch='nas_fpn',
        in_channels=[64, 128, 256, 512],
        out_channels=256,
        num_outs=5,
        stack_times=1,
        start_level=1,
        norm_cfg=norm_cfg),
    bbox_head=dict(in_channels=256))
