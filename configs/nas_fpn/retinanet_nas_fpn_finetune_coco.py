# Train RetinaNet with the pyramid found by nas_fpn_retinanet_coco.py on COCO,
# with mmdet's NAS-FPN recipe (ResNet-50, the pyramid stacked 7 times, 256
# channels, 640x640 crops, 50 epochs); arch='nas_fpn' gives mmdet's NAS-FPN.
#   python tools/train.py configs/nas_fpn/retinanet_nas_fpn_finetune_coco.py \
#       --cfg-options data_root=/path/to/coco/ model.neck.arch=work_dirs/nas_fpn_coco/best_arch.json
#   torchrun --nproc_per_node 8 tools/train.py configs/nas_fpn/retinanet_nas_fpn_finetune_coco.py \
#       --launcher pytorch --cfg-options data_root=/path/to/coco/
#   python tools/test.py configs/nas_fpn/retinanet_nas_fpn_finetune_coco.py \
#       work_dirs/retinanet_nas_fpn_finetune_coco/epoch_50.pth \
#       --cfg-options data_root=/path/to/coco/
_base_ = [
    'mmdet::nas_fpn/retinanet_r50_nasfpn_crop640-50e_coco.py',
    # custom_imports, so that mmdet's own tools/train.py and test.py work too.
    '../_base_/nas_tasks_runtime.py',
]

search_dir = 'work_dirs/nas_fpn_coco'
model = dict(
    # ImageNet weights from a local file (nothing is downloaded): torchvision's
    # resnet50-0676ba61.pth.
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint='checkpoints/resnet50-0676ba61.pth')),
    neck=dict(
        _delete_=True,
        type='SearchableNASFPN',
        arch=search_dir + '/best_arch.json',
        in_channels=[256, 512, 1024, 2048],
        out_channels=256,
        num_outs=5,
        stack_times=7,
        start_level=1,
        norm_cfg=dict(type='BN', requires_grad=True)))
