# DetNAS with Faster R-CNN (FPN) on COCO, the paper's search settings.
# Point data_root at your COCO copy:  --cfg-options data_root=/path/to/coco/
_base_ = [
    '../_base_/models/faster_rcnn_detnas_supernet.py',
    '../_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
    '../_base_/detnas_search_coco.py',
]
