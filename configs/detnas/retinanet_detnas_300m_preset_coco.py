# Train the published DetNAS-300M RetinaNet architecture on COCO without
# searching. Presets: detnas_300m_coco_fpn, detnas_300m_coco_retinanet,
# detnas_300m_voc_fpn, detnas_300m_voc_retinanet, detnas_1.3g_coco_fpn.
_base_ = [
    '../_base_/models/retinanet_detnas_supernet.py',
    '../_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
    '../_base_/nas_tasks_runtime.py',
]
model = dict(backbone=dict(_delete_=True, type='DetNASBackbone', arch='detnas_300m_coco_retinanet'))
optim_wrapper = dict(optimizer=dict(lr=0.01))
