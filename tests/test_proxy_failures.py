"""Diverged trainings and long searches: a NaN loss in a proxy training raises
for that candidate, one in the supernet stops the search with one clear line,
and proxy Runners leave no mmengine instances behind."""
import random

import pytest
import torch

from nas_tasks.errors import NasError

NAS_FPN_CONFIG = 'configs/nas_fpn/nas_fpn_retinanet_toy.py'
DETNAS_CONFIG = 'configs/detnas/detnas_retinanet_toy.py'
NAN_FROM_ITERATION = 2


@pytest.fixture
def nan_loss_from_iteration(monkeypatch):
    """RetinaHead's classification loss turns NaN from its NAN_FROM_ITERATION-th call on."""
    from mmdet.models.dense_heads import RetinaHead
    original = RetinaHead.loss_by_feat
    calls = []

    def loss_by_feat(self, *args, **kwargs):
        losses = original(self, *args, **kwargs)
        calls.append(1)
        if len(calls) >= NAN_FROM_ITERATION:
            losses['loss_cls'] = [loss * torch.nan for loss in losses['loss_cls']]
        return losses
    monkeypatch.setattr(RetinaHead, 'loss_by_feat', loss_by_feat)
    return calls


def build_estimator(config: str, toy_coco, **options):
    from nas_tasks.builder import load_config
    from nas_tasks.modules import register_all_modules
    from nas_tasks.registry import ESTIMATORS, SPACES
    register_all_modules()
    cfg = load_config(config, {'data_root': f'{toy_coco}/', **options})
    space = SPACES.build(cfg.search_space)
    estimator = ESTIMATORS.build(dict(cfg.estimator),
                                 default_args=dict(space=space, config=cfg, seed=0))
    return space, estimator


def test_a_nan_proxy_training_raises_for_that_arch_and_leaves_nothing_behind(
        toy_coco, tmp_path, nan_loss_from_iteration):
    from detection.proxy import count_mmengine_instances
    space, estimator = build_estimator(NAS_FPN_CONFIG, toy_coco,
                                       **{'train_cfg.max_iters': NAN_FROM_ITERATION + 1})
    estimator.train_shared(tmp_path, resume=False)
    estimator._validation_parts()  # built once per search, before any proxy run
    before = count_mmengine_instances()
    with pytest.raises(FloatingPointError,
                       match=rf'^proxy training diverged at iteration {NAN_FROM_ITERATION}: '
                             r'loss is nan \(log in .*proxy/arch_[0-9a-f]{12}\)$'):
        estimator.evaluate([space.sample(random.Random(0))])
    assert len(nan_loss_from_iteration) == NAN_FROM_ITERATION  # stopped at once
    assert count_mmengine_instances() == before


def test_proxy_runs_do_not_accumulate_mmengine_instances(toy_coco, tmp_path):
    from detection.proxy import count_mmengine_instances
    space, estimator = build_estimator(NAS_FPN_CONFIG, toy_coco,
                                       **{'train_cfg.max_iters': 1})
    estimator.train_shared(tmp_path, resume=False)
    counts = []
    for seed in range(3):
        result, = estimator.evaluate([space.sample(random.Random(seed))])
        assert 0.0 <= result.score <= 1.0
        counts.append(count_mmengine_instances())
    assert counts[0] == counts[1] == counts[2]
    # Every proxy Runner's log file is closed.
    from mmengine.logging import MMLogger
    open_files = [handler for logger in MMLogger._instance_dict.values()
                  for handler in logger.handlers if hasattr(handler, 'baseFilename')]
    assert not any('proxy' in handler.baseFilename for handler in open_files)


def test_a_nan_supernet_training_stops_the_search_with_one_line(
        toy_coco, tmp_path, nan_loss_from_iteration):
    space, estimator = build_estimator(DETNAS_CONFIG, toy_coco,
                                       **{'train_cfg.max_iters': NAN_FROM_ITERATION + 1})
    with pytest.raises(NasError) as raised:
        estimator.train_shared(tmp_path, resume=False)
    message = str(raised.value)
    assert '\n' not in message
    assert message.startswith(f'supernet training diverged at iteration {NAN_FROM_ITERATION} '
                              '(loss is nan)')
    assert f'last checkpoint in {tmp_path / "supernet"}' in message and '--resume' in message
    assert 'learning rate' in message and 'clip_grad' in message
    assert not (tmp_path / 'supernet' / 'supernet_final.pth').exists()


def test_evaluation_loaders_take_the_configs_loader_settings(toy_coco):
    from detection.data import build_full_split_loader, build_held_out_split
    from nas_tasks.builder import load_config
    from nas_tasks.modules import register_all_modules
    register_all_modules()
    cfg = load_config(NAS_FPN_CONFIG, {'data_root': f'{toy_coco}/'})
    cfg.train_dataloader.update(num_workers=2, persistent_workers=True, pin_memory=True,
                                sampler=dict(type='DefaultSampler', shuffle=True))
    loader = build_full_split_loader(cfg.train_dataloader, seed=7)
    assert (loader.num_workers, loader.persistent_workers, loader.pin_memory) == (2, True, True)
    assert loader.batch_size == cfg.train_dataloader.batch_size
    # Shuffled by the given seed, the same order on every pass, over the whole split.
    order = list(loader.sampler)
    assert loader.sampler.seed == 7 and order == list(loader.sampler)
    assert sorted(order) == list(range(len(loader.dataset))) != order

    cfg.val_dataloader.sampler = dict(type='InfiniteSampler', shuffle=False)
    with pytest.raises(NasError, match='val_dataloader.sampler is an InfiniteSampler'):
        build_held_out_split(cfg)
