# FNA architecture adaptation of MobileNetV2 for DeepLabv3 on Cityscapes (output
# stride 16, ASPP rates 6/12/18). The official code never released this search
# (JaminFong/FNA issue #21); the super network's depths (4,4,6,6,4,1) are those of
# the released searched network, the rest follows the detection search
# (../_base_/fna_search.py) with mmseg's Cityscapes settings (lr 0.01, wd 5e-4) and
# MAdds counted at 1024x2048. The paper reports 1.4 GPU-hours for it, so the schedule
# is short: 8 epochs, alpha from epoch 4. The weight lr has the detection search's shape
# (warm-up, then x0.1 when alpha starts training and again 3 epochs before the end):
# x0.1 at epochs 4 and 6. The total batch is 2 per GPU: 16 on 8 GPUs (the batch of
# the official parameter adaptation). On fewer GPUs accumulate to keep it:
#   GPUs   dataloader.batch_size   accumulative_counts   total batch
#   8      2                       1                     16
#   4      2                       2                     16
#   2      2                       4                     16
#   1      2                       8                     16
# The score is the derived path's val mIoU.
#   torchrun --nproc-per-node 8 tools/search.py configs/fna/fna_deeplabv3_cityscapes.py \
#       --launcher pytorch --cfg-options model.backbone.seed.weights=/path/to/mobilenetv2_100.pth
_base_ = ['../_base_/models/deeplabv3_fna_supernet.py', '../_base_/datasets/cityscapes.py',
          '../_base_/fna_search.py']

crop_size = (769, 769)
model = dict(data_preprocessor=dict(size=crop_size))
differentiable_search = dict(
    type='FNASegmentationSearch',
    trainer=dict(epochs=8, arch_start_epoch=4, dataloader=dict(batch_size=2),
                 accumulative_counts=1,  # 8 GPUs; see the table above
                 weight_optimizer=dict(lr=0.01, weight_decay=5e-4),
                 param_scheduler=[
                     dict(type='LinearLR', start_factor=1 / 3, by_epoch=False, begin=0, end=500),
                     dict(type='MultiStepLR', by_epoch=True, milestones=[4, 6], gamma=0.1)]),
    cost=dict(input_size=(1024, 2048)))

# tools/diagnose.py CONFIG WORK_DIR --random N: the adapted architecture against N
# random ones of this super network (a uniform op per searchable layer) and the seed's
# own, each remapped from the seed and trained by the parameter adaptation
# (deeplabv3_fna_finetune_cityscapes.py) on the search's training images, scored by the search's
# val mIoU. See docs/fna.md and docs/diagnostics.md.
diagnose = dict(
    random_architectures=dict(type='FNARandomArchitectures'),
    standalone=dict(type='FNAParameterAdaptation',
                    train_config='{{fileDirname}}/deeplabv3_fna_finetune_cityscapes.py'))
