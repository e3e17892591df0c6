# Fine-tune a found DetNAS backbone in RetinaNet on COCO (1x schedule).
#   python tools/train.py configs/detnas/retinanet_detnas_finetune_coco.py \
#       --cfg-options data_root=/path/to/coco/ \
#       model.backbone.arch=work_dirs/detnas_retinanet_coco/best_arch.json \
#       model.backbone.init_cfg.checkpoint=work_dirs/detnas_retinanet_coco/best_subnet.pth
_base_ = [
    '../_base_/models/retinanet_detnas_supernet.py',
    '../_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
    '../_base_/nas_tasks_runtime.py',
]
search_dir = 'work_dirs/detnas_retinanet_coco'
model = dict(backbone=dict(
    _delete_=True, type='DetNASBackbone', arch=search_dir + '/best_arch.json',
    init_cfg=dict(type='Pretrained', checkpoint=search_dir + '/best_subnet.pth')))
optim_wrapper = dict(optimizer=dict(lr=0.01))
