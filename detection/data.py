"""Data helpers for detection tasks: whole-split dataloaders (and the core path check)."""
from __future__ import annotations

import contextlib
import copy
import io

from mmengine.dataset import InfiniteSampler
from mmengine.evaluator import Evaluator
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from torch.utils.data import DataLoader

from detection import DEFAULT_SCOPE
from mmdet.registry import METRICS
from nas_tasks.data_paths import check_dataset_paths  # noqa: F401  (used here by the estimators)
from nas_tasks.dist import process_local
from nas_tasks.errors import NasError


def build_full_split_loader(dataloader_cfg: dict, seed: int = 0) -> DataLoader:
    """The config's dataloader over the whole dataset, on every rank.

    Built by mmengine's ``Runner.build_dataloader`` as in training, so the
    config's batch size, sampler and batch sampler, collate_fn, num_workers,
    persistent_workers and pin_memory are all honoured. Two things differ:
    candidate evaluation gives each rank whole candidates, so the sampler is
    built as in a single process and does not shard the split across ranks;
    and the sampler's seed is ``seed`` on every rank (unless the config sets
    one), so a shuffled split gives the same batches to every candidate.
    """
    cfg = copy.deepcopy(dict(dataloader_cfg))
    cfg.setdefault('sampler', dict(type='DefaultSampler', shuffle=False))
    # pycocotools prints while it indexes annotations; dataset and sampler
    # types are looked up in mmdet's registries.
    with process_local(), DefaultScope.overwrite_default_scope(DEFAULT_SCOPE), \
            contextlib.redirect_stdout(io.StringIO()):
        return Runner.build_dataloader(cfg, seed=seed)


def build_held_out_split(runner_cfg, seed: int = 0) -> tuple[DataLoader, Evaluator]:
    """The config's whole ``val_dataloader`` split and its ``val_evaluator``, ready to score."""
    loader = build_full_split_loader(runner_cfg.val_dataloader, seed)
    # A batch sampler (mmdet's AspectRatioBatchSampler, or torch's default) wraps the sampler.
    if isinstance(getattr(loader.batch_sampler, 'sampler', loader.sampler), InfiniteSampler):
        raise NasError('val_dataloader.sampler is an InfiniteSampler, but each candidate is scored '
                       "on one pass over the held-out split: use dict(type='DefaultSampler', "
                       'shuffle=False)')
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = Evaluator(METRICS.build(copy.deepcopy(runner_cfg.val_evaluator)))
    evaluator.dataset_meta = loader.dataset.metainfo
    return loader, evaluator
