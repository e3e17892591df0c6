"""FNA's parameter adaptation (fine-tuning) configs, and the search's warm-up, follow
the official recipes (JaminFong/FNA: fna_det/configs/fna_retinanet_fpn_retrain.py and
fna_retinanet_fpn_search.py; fna_seg's cityscapes.deeplabv3/config.py, dataloader.py
and the furnace's evaluator and lr_policy), checked on what mmdet, mmseg and mmengine
build from them."""
import math

import numpy as np
import pytest
import torch
from mmengine.registry import PARAM_SCHEDULERS, DefaultScope
from torch import nn

from nas_tasks.builder import load_config

SEGMENTATION = 'configs/fna/deeplabv3_fna_finetune_cityscapes.py'
DETECTION = 'configs/fna/retinanet_fna_finetune_coco.py'
# The official values.
TRAIN_SCALE_ARRAY = [0.75, 1, 1.25, 1.5, 1.75, 2.0]
CROP, EVAL_STRIDE_RATE = 769, 2 / 3
SEG_LR, SEG_WARMUP, SEG_ITERS, SEG_POWER = 1e-2, 5000, 100000, 0.9


def official_segmentation_lr(iteration: int) -> float:
    """fna_seg furnace/engine/lr_policy.py PolyLR.get_lr with the config's settings."""
    if iteration < SEG_WARMUP:
        return 0.0001 + (SEG_LR - 0.0001) / SEG_WARMUP * iteration
    return SEG_LR * (1 - (iteration - SEG_WARMUP) / (SEG_ITERS - SEG_WARMUP)) ** SEG_POWER


def official_detection_warmup_lr(iteration: int, lr: float) -> float:
    """mmcv 0.2's linear warm-up (warmup_iters 500, warmup_ratio 1/3) of the search and
    retrain configs."""
    k = (1 - iteration / 500) * (1 - 1 / 3)
    return lr * (1 - k)


def scheduled_lrs(schedule: list, lr: float, iterations: int) -> tuple[list[float], list]:
    """The learning rate of each iteration under mmengine's schedulers built from
    ``schedule`` (iteration-based ones, stepped after every iteration as a Runner does),
    and the schedulers."""
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)
    schedulers = [PARAM_SCHEDULERS.build(cfg, default_args=dict(optimizer=optimizer))
                  for cfg in schedule]
    lrs = []
    for _ in range(iterations):
        lrs.append(optimizer.param_groups[0]['lr'])
        for scheduler in schedulers:
            scheduler.step()
    return lrs, schedulers


def build_transforms(pipeline: list, scope: str) -> list:
    from mmengine.registry import TRANSFORMS
    with DefaultScope.overwrite_default_scope(scope):
        return [TRANSFORMS.build(step) for step in pipeline]


def test_segmentation_fine_tuning_augments_as_the_official_code():
    """A mirror, one of the six scales 0.75..2.0 of the image, a random 769 crop (the
    preprocessor pads a smaller one to 769); no colour distortion."""
    cfg = load_config(SEGMENTATION)
    transforms = build_transforms(cfg.train_dataloader.dataset.pipeline, 'mmseg')
    names = [type(t).__name__ for t in transforms]
    assert names == ['LoadImageFromFile', 'LoadAnnotations', 'RandomChoiceResize', 'RandomCrop',
                     'RandomFlip', 'PackSegInputs']
    resize, crop, flip = transforms[2], transforms[3], transforms[4]
    assert crop.crop_size == (CROP, CROP) and crop.cat_max_ratio == 1.0
    assert flip.prob == 0.5 and flip.direction == 'horizontal'
    assert tuple(cfg.model.data_preprocessor.size) == (CROP, CROP)

    # mmseg's resize applied to a Cityscapes-sized image: exactly the official scales.
    np.random.seed(0)  # the draws of mmcv's RandomChoiceResize (30 cover the six here)
    sizes = set()
    for _ in range(30):
        results = resize(dict(img=np.zeros((1024, 2048), np.uint8),
                              gt_seg_map=np.zeros((1024, 2048), np.uint8), seg_fields=['gt_seg_map']))
        assert results['img'].shape[:2] == results['gt_seg_map'].shape
        sizes.add(results['img'].shape[:2])
    assert sizes == {(int(1024 * s), int(2048 * s)) for s in TRAIN_SCALE_ARRAY}


def test_segmentation_fine_tuning_evaluates_in_official_sliding_windows():
    """The whole image in 769x769 windows at a stride of ceil(769 * 2/3) (the official
    evaluator's scale_process), at scale 1, without flipping."""
    from mmseg.registry import MODELS as MMSEG_MODELS

    cfg = load_config(SEGMENTATION)
    stride = math.ceil(CROP * EVAL_STRIDE_RATE)
    assert stride == 513
    assert cfg.model.test_cfg == dict(mode='slide', crop_size=(CROP, CROP), stride=(stride, stride))
    assert [t['type'] for t in cfg.test_dataloader.dataset.pipeline] == [
        'LoadImageFromFile', 'Resize', 'LoadAnnotations', 'PackSegInputs']
    assert tuple(cfg.test_dataloader.dataset.pipeline[1].scale) == (2048, 1024)  # scale 1

    # mmseg's segmentor slides those windows: 3 x 4 of them over a 1024 x 2048 image.
    cfg.model.backbone.update(arch='fna_deeplabv3_mobilenetv2', weights=None)
    cfg.model.decode_head.norm_cfg = dict(type='BN', requires_grad=True)
    with DefaultScope.overwrite_default_scope('mmseg'):
        segmentor = MMSEG_MODELS.build(cfg.model).eval()
    windows = []
    segmentor.encode_decode = lambda crop, metas: (
        windows.append(tuple(crop.shape[-2:])) or torch.zeros(1, 19, *crop.shape[-2:]))
    with torch.no_grad():
        segmentor.slide_inference(torch.zeros(1, 3, 1024, 2048),
                                  [dict(img_shape=(1024, 2048), ori_shape=(1024, 2048),
                                        pad_shape=(1024, 2048), padding_size=[0, 0, 0, 0])])
    assert windows == [(CROP, CROP)] * (2 * 4)


def test_segmentation_fine_tuning_schedule_is_the_official_warm_up_and_poly():
    cfg = load_config(SEGMENTATION)
    assert cfg.train_cfg.max_iters == SEG_ITERS
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr, optimizer.momentum, optimizer.weight_decay) == (
        'SGD', SEG_LR, 0.9, 5e-4)
    assert cfg.train_dataloader.batch_size * 8 == 16
    # The warm-up and the start of the decay, stepped (all 100K would take long here) ...
    steps = SEG_WARMUP + 1000
    lrs, (_, poly) = scheduled_lrs(cfg.param_scheduler, optimizer.lr, steps)
    assert len(set(lrs[:SEG_WARMUP + 1])) == SEG_WARMUP + 1  # rising to lr at 5000, falling
    expected = [official_segmentation_lr(t) for t in range(steps)]
    assert lrs == pytest.approx(expected, rel=1e-9, abs=1e-15)
    # ... and the rest of mmengine's chained poly decay, (1 - 1/(total - step + 1)) ** power
    # an iteration, is lr * (1 - step / total) ** power: the official decay for this total.
    assert (poly.begin, poly.total_iters, poly.power, poly.eta_min) == (
        SEG_WARMUP, SEG_ITERS - SEG_WARMUP, SEG_POWER, 0.0)
    assert poly.end > SEG_ITERS - 1  # decays up to the last iteration


@pytest.mark.parametrize('config', [DETECTION, 'configs/fna/retinanet_fna_finetune_toy.py',
                                    'configs/fna/fna_retinanet_coco.py',
                                    'configs/fna/fna_retinanet_toy.py'])
def test_fna_retinanets_train_boxes_with_smooth_l1_of_beta_0_11(config):
    """The official train_cfg's smoothl1_beta=0.11 (search and retrain), weight 1."""
    from mmdet.models.losses import SmoothL1Loss
    from mmdet.registry import MODELS as MMDET_MODELS

    head_cfg = load_config(config).model.bbox_head
    with DefaultScope.overwrite_default_scope('mmdet'):
        head = MMDET_MODELS.build(head_cfg)
    assert type(head.loss_bbox) is SmoothL1Loss
    assert (head.loss_bbox.beta, head.loss_bbox.loss_weight) == (0.11, 1.0)


@pytest.mark.parametrize('config', [DETECTION, 'configs/fna/fna_retinanet_coco.py'])
def test_detection_recipes_warm_up_from_a_third_then_step_at_8_and_11(config):
    cfg = load_config(config)
    if 'differentiable_search' in cfg:  # the search: 0.02, 14 epochs
        trainer = cfg.differentiable_search.trainer
        schedule, lr, epochs = trainer.param_scheduler, trainer.weight_optimizer.lr, 14
        assert trainer.epochs == epochs
    else:  # the retrain: 0.05, 12 epochs
        schedule, lr, epochs = cfg.param_scheduler, cfg.optim_wrapper.optimizer.lr, 12
        assert cfg.train_cfg.max_epochs == epochs
    warm_up, steps = schedule
    lrs, _ = scheduled_lrs([warm_up], lr, 600)
    assert lrs[0] == pytest.approx(lr / 3, rel=1e-12)
    assert lrs == pytest.approx([official_detection_warmup_lr(min(t, 500), lr)
                                 for t in range(600)], rel=1e-9)
    assert lrs[499] < lrs[500] == pytest.approx(lr, rel=1e-12)
    # The official step=[8, 11] (the search's [8, 11, 14]: its 14 falls after the last epoch).
    assert (steps.type, steps.by_epoch, steps.milestones, steps.gamma) == (
        'MultiStepLR', True, [8, 11], 0.1)
