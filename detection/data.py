"""Data helpers for detection tasks: whole-split dataloaders (and the core path check)."""
from __future__ import annotations

import contextlib
import copy
import io
from functools import partial

from mmengine.dataset import pseudo_collate
from mmengine.evaluator import Evaluator
from mmengine.registry import FUNCTIONS
from torch.utils.data import DataLoader

from mmdet.registry import DATASETS, METRICS
from nas_tasks.data_paths import check_dataset_paths  # noqa: F401  (used here by the estimators)


def build_full_split_loader(dataloader_cfg: dict) -> DataLoader:
    """A dataloader over the whole dataset, in order, on every rank.

    mmengine's samplers shard data across ranks; candidate evaluation instead
    gives each rank whole candidates, so each rank must see the full split.
    """
    cfg = copy.deepcopy(dict(dataloader_cfg))
    dataset = DATASETS.build(cfg['dataset'])
    collate_cfg = dict(cfg.get('collate_fn') or dict(type='pseudo_collate'))
    collate_type = collate_cfg.pop('type')
    collate_fn = FUNCTIONS.get(collate_type) if isinstance(collate_type, str) else collate_type
    return DataLoader(dataset, batch_size=cfg.get('batch_size', 1), shuffle=False, num_workers=0,
                      collate_fn=partial(collate_fn or pseudo_collate, **collate_cfg))


def build_held_out_split(runner_cfg) -> tuple[DataLoader, Evaluator]:
    """The config's whole ``val_dataloader`` split and its ``val_evaluator``, ready to score."""
    # pycocotools prints while it indexes annotations.
    with contextlib.redirect_stdout(io.StringIO()):
        loader = build_full_split_loader(runner_cfg.val_dataloader)
        evaluator = Evaluator(METRICS.build(copy.deepcopy(runner_cfg.val_evaluator)))
    evaluator.dataset_meta = loader.dataset.metainfo
    return loader, evaluator
