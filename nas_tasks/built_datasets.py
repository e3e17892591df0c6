"""Datasets parsed once per process and handed to every consumer.

A proxy-task search trains each candidate in a fresh mmengine Runner, and a
Runner builds its training dataset from the config: with COCO, a parse of
train2017's annotation file (about 450 MB of JSON, a minute and gigabytes of
memory) per candidate, 800 times in the NAS-FPN paper's search. A dataloader
config whose dataset is ``parsed_once(dataset_cfg)`` (that is,
``dict(type='ParsedOnceDataset', dataset=dataset_cfg)``) instead builds the
inner dataset the first time this process asks for it, fully initialised, and
from then on hands out a copy of it that *shares its parsed annotations*
(mmengine ``BaseDataset``'s ``data_list``, or its serialised ``data_bytes``
and ``data_address``, in the dataset and in every dataset it wraps) and owns
everything else, its pipeline included. So a candidate's transforms cannot
change another candidate's data, and the annotations themselves are never
handed out: ``BaseDataset.get_data_info`` gives every sample as a copy. The
config stays a plain dict, so a Runner can still deep-copy and dump it.

One parse per process: under torchrun every rank builds its own (each rank
trains whole candidates, in :func:`nas_tasks.dist.process_local`). The parsed
datasets stay in memory for the life of the process, which is what a search
wants; :func:`forget_parsed_datasets` lets them go.
"""
from __future__ import annotations

import copy
import json
import os
from typing import Any, Iterator

from mmengine.registry import DATASETS, DefaultScope

from nas_tasks.data_paths import leaf_datasets

PARSED_ONCE_TYPE = 'ParsedOnceDataset'
# What mmengine's BaseDataset parses its annotation file into (BaseDataset's
# own _copy_without_annotation leaves out the same three).
ANNOTATION_ATTRIBUTES = ('data_list', 'data_bytes', 'data_address')

# The datasets this process has parsed, by _cache_key of their config.
_PARSED: dict[str, Any] = {}


def parsed_once(dataset_cfg: dict) -> dict:
    """The dataset config that builds ``dataset_cfg`` once per process and shares its annotations."""
    return dict(type=PARSED_ONCE_TYPE, dataset=copy.deepcopy(dict(dataset_cfg)))


@DATASETS.register_module(name=PARSED_ONCE_TYPE)
def parsed_once_dataset(dataset: dict):
    """``dataset`` (a config) built at the first call in this process; a sharing copy after.

    Registered in mmengine's root DATASETS, so a Runner of any scope finds it.
    """
    return copy_sharing_annotations(parsed_dataset(dataset))


def parsed_dataset(dataset_cfg: dict):
    """The dataset of ``dataset_cfg``, built and fully initialised once per process.

    Keyed by the config, the default scope its type is looked up in, and the
    size and modification time of its annotation files, so a file rewritten
    in place is parsed again. Do not change what it returns: hand out
    :func:`copy_sharing_annotations` of it.
    """
    key = _cache_key(dataset_cfg)
    if key not in _PARSED:
        dataset = DATASETS.build(copy.deepcopy(dataset_cfg))
        if hasattr(dataset, 'full_init'):  # mmengine datasets may be built lazily
            dataset.full_init()
        _PARSED[key] = dataset
    return _PARSED[key]


def copy_sharing_annotations(dataset):
    """A deep copy of ``dataset`` whose parsed annotations are the same objects as its own."""
    shared = {id(part): part for part in _annotations(dataset)}
    return copy.deepcopy(dataset, shared)


def forget_parsed_datasets() -> None:
    """Let go of every dataset parsed so far (the next request parses again)."""
    _PARSED.clear()


def _annotations(dataset) -> Iterator[Any]:
    """The parsed annotations of ``dataset`` and of the datasets it wraps
    (mmengine's RepeatDataset and ClassBalancedDataset: ``dataset``;
    ConcatDataset: ``datasets``)."""
    attributes = getattr(dataset, '__dict__', {})
    for name in ANNOTATION_ATTRIBUTES:
        if attributes.get(name) is not None:
            yield attributes[name]
    if attributes.get('dataset') is not None:
        yield from _annotations(attributes['dataset'])
    for inner in attributes.get('datasets') or ():
        yield from _annotations(inner)


def _cache_key(dataset_cfg: dict) -> str:
    scope = DefaultScope.get_current_instance()
    files = []
    for _, leaf in leaf_datasets(dataset_cfg):
        ann_file = leaf.get('ann_file')
        if isinstance(ann_file, str) and ann_file:
            path = os.path.join(leaf.get('data_root') or '', ann_file)
            stat = os.stat(path) if os.path.isfile(path) else None
            files.append([path, stat and stat.st_size, stat and stat.st_mtime_ns])
    return json.dumps([scope and scope.scope_name, dataset_cfg, files], sort_keys=True,
                      default=repr)


def subset_of(dataset, indices: list[int]):
    """``dataset.get_subset(indices)`` (mmengine's ``BaseDataset``) with a fresh copy memo.

    mmengine's ``BaseDataset._copy_without_annotation(self, memo=dict())``
    deep-copies everything but the annotations into one default memo shared by
    every call in the process. It keeps each subset's copies alive, and once a
    dataset it copied is freed, a new object at the same address deep-copies
    to that old dataset's copy: seen in the suite as a CocoDataset in a
    subset's ``pipeline`` ("'CocoDataset' object is not callable"), after many
    searches in one process. Clearing that memo before and after each call
    gives every subset a memo of its own.
    """
    copy_without_annotation = getattr(type(dataset), '_copy_without_annotation', None)
    defaults = getattr(copy_without_annotation, '__defaults__', None) or ()
    shared_memo = defaults[0] if defaults and isinstance(defaults[0], dict) else {}
    shared_memo.clear()
    try:
        return dataset.get_subset(indices)
    finally:
        shared_memo.clear()
