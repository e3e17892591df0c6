# DetNAS with Faster R-CNN (FPN) on COCO, the paper's search settings: the
# supernet trains on the search-train part of train2017 and candidates are
# ranked on its held-out part; val2017 reports only the fine-tuned result
# (faster_rcnn_detnas_finetune_coco.py). Steps 1 and 2 (ImageNet pre-training,
# tools/split_coco.py) as in detnas_retinanet_coco.py, then:
#   python tools/search.py configs/detnas/detnas_faster_rcnn_coco.py \
#       --cfg-options data_root=/path/to/coco/ --work-dir work_dirs/detnas_faster_rcnn_coco
# To train the supernet from scratch instead: --cfg-options model.backbone.init_cfg=None
_base_ = [
    '../_base_/models/faster_rcnn_detnas_supernet.py',
    '../_base_/detnas_search_coco.py',
]
# The supernet starts from its ImageNet pre-training (step 1); prefix: the
# classifier's backbone.* weights. It trains with synchronised BN at 2 images
# per GPU, as the official search does (on one process SyncBN is plain BN; each
# candidate's statistics are still recalibrated per process, docs/detnas.md).
model = dict(backbone=dict(norm_cfg=dict(type='SyncBN', requires_grad=True), init_cfg=dict(
    type='Pretrained', checkpoint='work_dirs/detnas_supernet_imagenet/classifier_weights.pth',
    prefix='backbone.')))
