# FNA architecture adaptation of MobileNetV2 for RetinaNet on COCO, with the settings
# of the official search (JaminFong/FNA configs/fna_retinanet_fpn_search.py, see
# ../_base_/fna_search.py): the super network (4,4,4,4,4,1 layers; k 3/5/7 x e 3/6,
# skip) remapped from the seed; train2017's search-train part halved into a weight
# half and an architecture half; 14 epochs, architecture updates from epoch 8; SGD lr
# 0.02 with the official step schedule (warm-up 500 iterations, x0.1 at epochs 8 and
# 11) for a total batch of 8: 1 image per GPU on 8 GPUs under torchrun, as the official
# run. The authors found that the total batch changes the architecture found (JaminFong/
# FNA issue #3), so on fewer GPUs accumulate gradients to reach 8:
#   GPUs   dataloader.batch_size   accumulative_counts   total batch
#   8      1                       1                     8
#   4      1                       2                     8
#   2      1                       4                     8
#   1      1                       8                     8
# MAdds counted at 800x1088. The final score is bbox mAP of the derived path on the
# held-out part of train2017 (val2017 stays for the fine-tuned network). Split train2017
# once (../_base_/datasets/coco_search.py says how) and give the seed's ImageNet weights
# (a local timm state dict):
#   torchrun --nproc-per-node 8 tools/search.py configs/fna/fna_retinanet_coco.py \
#       --launcher pytorch --cfg-options model.backbone.seed.weights=/path/to/mobilenetv2_100.pth
# and on 2 GPUs add differentiable_search.trainer.accumulative_counts=4.
_base_ = ['../_base_/models/retinanet_fna_supernet.py', '../_base_/datasets/coco_search.py',
          '../_base_/fna_search.py']

differentiable_search = dict(
    type='FNADetectionSearch',
    trainer=dict(epochs=14, arch_start_epoch=8,
                 dataloader=dict(batch_size=1, batch_sampler=dict(type='AspectRatioBatchSampler')),
                 accumulative_counts=1),  # 8 GPUs; see the table above
    cost=dict(input_size=(800, 1088)))

# tools/diagnose.py CONFIG WORK_DIR --random N: the adapted architecture against N
# random ones of this super network (a uniform op per searchable layer) and the seed's
# own, each remapped from the seed and trained by the parameter adaptation
# (retinanet_fna_finetune_coco.py) on the search's training images, scored by the search's
# bbox mAP on the held-out part of train2017. See docs/fna.md and docs/diagnostics.md.
diagnose = dict(
    random_architectures=dict(type='FNARandomArchitectures'),
    standalone=dict(type='FNAParameterAdaptation',
                    train_config='{{fileDirname}}/retinanet_fna_finetune_coco.py'))
