# DetNAS with RetinaNet on COCO, the paper's search settings: the supernet
# trains on the search-train part of train2017 and candidates are ranked on
# its held-out part; val2017 reports only the fine-tuned result
# (retinanet_detnas_finetune_coco.py). Steps, with data_root=/path/to/coco/:
#   1. pre-train the supernet on ImageNet (writes the init_cfg checkpoint below):
#      python tools/train.py configs/detnas/detnas_supernet_imagenet.py
#   2. split train2017 once:
#      python tools/split_coco.py /path/to/coco/annotations/instances_train2017.json \
#          --held-out 5000 --seed 0
#   3. python tools/search.py configs/detnas/detnas_retinanet_coco.py \
#          --cfg-options data_root=/path/to/coco/ --work-dir work_dirs/detnas_retinanet_coco
# To skip step 1 and train the supernet from scratch (not the paper's recipe),
# add model.backbone.init_cfg=None to --cfg-options.
_base_ = [
    '../_base_/models/retinanet_detnas_supernet.py',
    '../_base_/detnas_search_coco.py',
]
# The supernet starts from its ImageNet pre-training (step 1); prefix: the
# classifier's backbone.* weights. It trains with synchronised BN at 2 images
# per GPU, as the official search does (on one process SyncBN is plain BN; each
# candidate's statistics are still recalibrated per process, docs/detnas.md).
model = dict(backbone=dict(norm_cfg=dict(type='SyncBN', requires_grad=True), init_cfg=dict(
    type='Pretrained', checkpoint='work_dirs/detnas_supernet_imagenet/classifier_weights.pth',
    prefix='backbone.')))
optim_wrapper = dict(optimizer=dict(lr=0.01))
