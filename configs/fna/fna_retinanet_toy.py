# FNA on the built-in toy COCO data: architecture adaptation of a MobileNetV2 seed
# inside RetinaNet (a shallow super network, 3x3/5x5 kernels), then the seed remapped
# into the found network. Under a minute on 2 CPU cores (35 s measured):
#   python tools/make_toy_data.py imagenet data/toy_imagenet_seed --per-class 256 --num-val-per-class 32
#   python tools/train.py configs/fna/mobilenetv2_seed_toy.py      # the seed, a few minutes
#   python tools/make_toy_data.py coco data/toy_coco
#   python tools/search.py configs/fna/fna_retinanet_toy.py
# writes work_dirs/fna_retinanet_toy/{best_arch.json, adapted_weights.pth, remap_report.json},
# which retinanet_fna_finetune_toy.py fine-tunes.
_base_ = ['../_base_/models/retinanet_fna_supernet.py', '../_base_/datasets/toy_coco_search.py',
          '../_base_/fna_search.py']

model = dict(
    backbone=dict(
        seed=dict(weights='work_dirs/mobilenetv2_seed_toy/seed_weights.pth'),
        depths=(2, 2, 2, 2, 2, 1), kernel_sizes=(3, 5)),
    # A narrow FPN and head keep a CPU step cheap; 2 classes as in the toy data.
    neck=dict(out_channels=64),
    bbox_head=dict(num_classes=2, in_channels=64, feat_channels=64, stacked_convs=2),
    # After a short search few boxes clear mmdet's 0.05 threshold; score every box.
    test_cfg=dict(score_thr=0.0))

# The official recipe in small: a total batch of 8 (2 images x 4 accumulated
# micro-batches, as 8 GPUs x 1 image), lr 0.02, a warm-up of 3 steps, x0.1 when alpha
# starts training (epoch 3) and at epoch 5.
differentiable_search = dict(
    type='FNADetectionSearch',
    trainer=dict(epochs=6, arch_start_epoch=3,
                 dataloader=dict(batch_size=2, num_workers=0, persistent_workers=False,
                                 batch_sampler=dict(type='AspectRatioBatchSampler')),
                 accumulative_counts=4,
                 param_scheduler=[
                     dict(type='LinearLR', start_factor=1 / 3, by_epoch=False, begin=0, end=3),
                     dict(type='MultiStepLR', by_epoch=True, milestones=[3, 5], gamma=0.1)],
                 arch_optimizer=dict(lr=3e-3), log_interval=10),
    # The MAdds at the toy image size.
    cost=dict(input_size=(128, 128)))

# tools/diagnose.py CONFIG WORK_DIR --random N: the adapted architecture against N
# random ones of this super network (a uniform op per searchable layer) and the seed's
# own, each remapped from the seed and trained by the parameter adaptation
# (retinanet_fna_finetune_toy.py) on the search's training images, scored by the search's
# bbox mAP on the held-out split. See docs/fna.md and docs/diagnostics.md.
diagnose = dict(
    random_architectures=dict(type='FNARandomArchitectures'),
    standalone=dict(type='FNAParameterAdaptation',
                    train_config='{{fileDirname}}/retinanet_fna_finetune_toy.py'))
