# FNA architecture adaptation of MobileNetV2 for DeepLabv3 on Cityscapes (output
# stride 16, ASPP rates 6/12/18). The official code never released this search
# (JaminFong/FNA issue #21); the super network's depths (4,4,6,6,4,1) are those of
# the released searched network, the rest follows the detection search
# (../_base_/fna_search.py) with mmseg's Cityscapes settings (lr 0.01, wd 5e-4) and
# MAdds counted at 1024x2048. The paper reports 1.4 GPU-hours for it, so the schedule
# is short: 8 epochs, alpha from epoch 4. The score is the derived path's val mIoU.
#   python tools/search.py configs/fna/fna_deeplabv3_cityscapes.py \
#       --cfg-options model.backbone.seed.weights=/path/to/mobilenetv2_100.pth
_base_ = ['../_base_/models/deeplabv3_fna_supernet.py', '../_base_/datasets/cityscapes.py',
          '../_base_/fna_search.py']

crop_size = (769, 769)
model = dict(data_preprocessor=dict(size=crop_size))
differentiable_search = dict(
    type='FNASegmentationSearch',
    trainer=dict(epochs=8, arch_start_epoch=4, dataloader=dict(batch_size=2),
                 weight_optimizer=dict(lr=0.01, weight_decay=5e-4)),
    cost=dict(input_size=(1024, 2048)))
