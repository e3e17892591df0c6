"""Data helpers for detection tasks: path checks and whole-split dataloaders."""
from __future__ import annotations

import contextlib
import copy
import io
import os
from functools import partial

from mmengine.dataset import pseudo_collate
from mmengine.evaluator import Evaluator
from mmengine.registry import FUNCTIONS
from torch.utils.data import DataLoader

from mmdet.registry import DATASETS, METRICS
from nas_tasks.errors import NasError

TOY_DATA_HINT = 'generate the toy set with: python tools/make_toy_data.py coco data/toy_coco'


def check_dataset_paths(dataset_cfg: dict, split: str) -> None:
    """Fail with one line if a dataset's annotation file or image folder is missing."""
    data_root = dataset_cfg.get('data_root', '') or ''
    ann_file = dataset_cfg.get('ann_file')
    if ann_file:
        path = os.path.join(data_root, ann_file)
        if not os.path.isfile(path):
            raise NasError(f'{split} annotation file not found: {path}; set data_root in the '
                           f'config (--cfg-options data_root=...) or {TOY_DATA_HINT}')
    image_dir = (dataset_cfg.get('data_prefix') or {}).get('img')
    if image_dir is not None:
        path = os.path.join(data_root, image_dir)
        if not os.path.isdir(path):
            raise NasError(f'{split} image folder not found: {path}; set data_root in the config '
                           f'or {TOY_DATA_HINT}')


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
