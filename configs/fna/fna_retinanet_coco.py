# FNA architecture adaptation of MobileNetV2 for RetinaNet on COCO, with the settings
# of the official search (JaminFong/FNA configs/fna_retinanet_fpn_search.py, see
# ../_base_/fna_search.py): the super network (4,4,4,4,4,1 layers; k 3/5/7 x e 3/6,
# skip) remapped from the seed; train2017's search-train part halved into a weight
# half and an architecture half; 14 epochs, architecture updates from epoch 8; SGD lr
# 0.02 for a total batch of 8 (1 image per GPU on 8 GPUs under torchrun); MAdds
# counted at 800x1088. The final score is bbox mAP of the derived path on the held-out
# part of train2017 (val2017 stays for the fine-tuned network). Differences from the
# official run: its step schedule (8, 11 with warm-up) is a constant lr here (the
# trainer offers constant or cosine). Split train2017 once (../_base_/datasets/
# coco_search.py says how) and give the seed's ImageNet weights (a local timm state dict):
#   python tools/search.py configs/fna/fna_retinanet_coco.py \
#       --cfg-options model.backbone.seed.weights=/path/to/mobilenetv2_100.pth
_base_ = ['../_base_/models/retinanet_fna_supernet.py', '../_base_/datasets/coco_search.py',
          '../_base_/fna_search.py']

differentiable_search = dict(
    type='FNADetectionSearch',
    trainer=dict(epochs=14, arch_start_epoch=8,
                 dataloader=dict(batch_size=1, batch_sampler=dict(type='AspectRatioBatchSampler'))),
    cost=dict(input_size=(800, 1088)))
