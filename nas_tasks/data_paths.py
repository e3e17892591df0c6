"""Dataset paths of mmdet and mmseg configs: found before anything is built, or one clear line.

A missing annotation file or data folder must not surface as a traceback
from deep inside a dataset class, and nothing is ever downloaded: the error
names the path, the config key that points at it, and how to get the data.
"""
from __future__ import annotations

import os
from typing import Iterator

from nas_tasks.errors import NasError

SET_DATA_ROOT = 'set data_root (--cfg-options data_root=...)'

# How to get what a dataset type reads, keyed by the config's dataset type.
# Filled by the task packages (register_data_hint), which know their datasets.
GET_DATA: dict[str, str] = {}
# Segmentation maps that a download lacks and a tool writes: the dataset class's
# default seg_map_suffix and the command, which takes the data root.
WRITE_SEG_MAPS: dict[str, tuple[str, str]] = {}
FOLDER_NAMES = {'img': 'image folder', 'img_path': 'image folder',
                'seg': 'segmentation map folder', 'seg_map_path': 'segmentation map folder'}


def register_data_hint(dataset_type: str, get_data: str,
                       write_seg_maps: tuple[str, str] | None = None) -> None:
    """Tells the path checks how a user gets the data of ``dataset_type``.

    ``get_data`` ends the error line of a missing file or folder (after "set
    data_root ... or "); ``write_seg_maps`` is (default seg_map_suffix,
    command) for maps that a tool derives from the download.
    """
    GET_DATA[dataset_type] = get_data
    if write_seg_maps is not None:
        WRITE_SEG_MAPS[dataset_type] = write_seg_maps


def leaf_datasets(dataset_cfg: dict, key: str = 'dataset') -> Iterator[tuple[str, dict]]:
    """(config key, config) of each dataset that reads files, inside wrappers such as
    ``RepeatDataset`` (``dataset=``) or ``ConcatDataset`` (``datasets=[...]``)."""
    if isinstance(dataset_cfg.get('dataset'), dict):
        yield from leaf_datasets(dataset_cfg['dataset'], f'{key}.dataset')
    elif isinstance(dataset_cfg.get('datasets'), (list, tuple)):
        for index, child in enumerate(dataset_cfg['datasets']):
            yield from leaf_datasets(child, f'{key}.datasets.{index}')
    else:
        yield key, dataset_cfg


def check_dataset_paths(dataset_cfg: dict, split: str) -> None:
    """Fail with one line if a dataset's annotation file, data folders or maps are missing.

    ``split`` is ``'train'``, ``'val'`` or ``'test'``: the config key named in
    the message is ``<split>_dataloader.dataset...``.
    """
    for key, cfg in leaf_datasets(dataset_cfg, f'{split}_dataloader.dataset'):
        _check_leaf(cfg, split, key)


def _check_leaf(cfg: dict, split: str, key: str) -> None:
    data_root = cfg.get('data_root') or ''
    dataset_type = cfg.get('type')
    fix = SET_DATA_ROOT + (f' or {GET_DATA[dataset_type]}' if dataset_type in GET_DATA else '')
    ann_file = cfg.get('ann_file')
    if ann_file:
        path = os.path.join(data_root, ann_file)
        if not os.path.isfile(path):
            raise NasError(f'{split} annotation file not found: {path} ({key}.ann_file); {fix}')
    prefixes = cfg.get('data_prefix') or {}
    for name, folder in prefixes.items():
        if isinstance(folder, str):
            path = os.path.join(data_root, folder)
            if not os.path.isdir(path):
                what = FOLDER_NAMES.get(name, f"'{name}' folder")
                raise NasError(f'{split} {what} not found: {path} ({key}.data_prefix.{name}); {fix}')
    if dataset_type in WRITE_SEG_MAPS and isinstance(prefixes.get('seg_map_path'), str):
        suffix, command = WRITE_SEG_MAPS[dataset_type]
        path = os.path.join(data_root, prefixes['seg_map_path'])
        if cfg.get('seg_map_suffix', suffix) == suffix and not _holds_file(path, suffix):
            raise NasError(f'{split} has no *{suffix} maps under {path}; write them with: '
                           f'{command} {data_root or "DATA_ROOT"}')


def _holds_file(folder: str, suffix: str) -> bool:
    """Whether any file under ``folder`` ends with ``suffix``; stops at the first."""
    for _, _, files in os.walk(folder):
        if any(name.endswith(suffix) for name in files):
            return True
    return False
