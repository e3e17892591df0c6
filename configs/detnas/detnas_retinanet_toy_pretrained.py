# detnas_retinanet_toy.py with its supernet initialised from the ImageNet-style
# pre-training of detnas_supernet_imagenet_toy.py (DetNAS step 1), as the paper
# does, instead of from scratch:
#   python tools/train.py configs/detnas/detnas_supernet_imagenet_toy.py
#   python tools/search.py configs/detnas/detnas_retinanet_toy_pretrained.py \
#       --work-dir work_dirs/detnas_toy_pretrained
_base_ = ['./detnas_retinanet_toy.py']

model = dict(
    backbone=dict(
        init_cfg=dict(type='Pretrained',
                      checkpoint='work_dirs/detnas_supernet_imagenet_toy/classifier_weights.pth',
                      prefix='backbone.')))
