"""Checks of an mmdet/mmseg config that run before anything is built.

Two mistakes otherwise surface late, as tracebacks from deep inside mmengine
or mmdet:

* a checkpoint the config names does not exist (or is a URL, and nothing is
  downloaded here): :func:`check_checkpoint_paths`;
* the model's heads predict another number of classes than the dataset has
  (a focal-loss assertion after the first batch): :func:`check_num_classes`.

Each raises a :class:`NasError` of one line naming the config key and the fix.
"""
from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path
from typing import Any, Iterator, NamedTuple

from nas_tasks.data_paths import leaf_datasets
from nas_tasks.errors import NasError

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / 'configs'
WORK_DIRS = 'work_dirs'
# Config keys (their last part) whose string values are weights to load.
CHECKPOINT_KEY_ENDINGS = ('checkpoint', 'weights')
PRETRAINED_KEY = 'pretrained'
# Heads whose num_classes must match the dataset (dotted paths under ``model``).
CLASSIFYING_HEADS = ('bbox_head', 'roi_head.bbox_head', 'roi_head.mask_head',
                     'decode_head', 'auxiliary_head')


def is_search_config(cfg) -> bool:
    """Whether ``cfg`` is run by tools/search.py (sample-based or differentiable)."""
    return 'search_space' in cfg or 'differentiable_search' in cfg


# -- checkpoints ---------------------------------------------------------------
def check_checkpoint_paths(cfg, initialising: bool = True) -> None:
    """Fail with one line if a checkpoint the config names is a URL or a missing file.

    ``initialising=False`` leaves out the weights that only initialise the
    model (init_cfg, pretrained): testing a checkpoint (``load_from``) never
    loads them.
    """
    for key, path in checkpoint_paths(cfg):
        if not initialising and _initialises(key):
            continue
        if '://' in path:
            raise NasError(f'{key} is a URL ({path}); nothing is downloaded here: point it at '
                           'a local file')
        if not os.path.isfile(path):
            raise NasError(f'checkpoint not found: {path} ({key}); {how_to_write(path, key)}')


def checkpoint_paths(cfg) -> Iterator[tuple[str, str]]:
    """(dotted config key, path) of every weights file the config would load.

    That is ``load_from``, every ``init_cfg=dict(type='Pretrained',
    checkpoint=...)`` (or a list of init_cfgs) anywhere in the config, and
    any string under a key ending in ``checkpoint``/``weights``, or named
    ``pretrained``.
    """
    for key, value in _walk(cfg.to_dict() if hasattr(cfg, 'to_dict') else cfg, ''):
        if isinstance(value, str) and value and _names_weights(key):
            yield key, value


def _walk(node: Any, key: str) -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every leaf under ``node``; list items are keyed by index."""
    if isinstance(node, dict):
        for name, child in node.items():
            yield from _walk(child, f'{key}.{name}' if key else str(name))
    elif isinstance(node, (list, tuple)):
        for index, child in enumerate(node):
            yield from _walk(child, f'{key}.{index}')
    else:
        yield key, node


def _names_weights(key: str) -> bool:
    # An init_cfg's ``checkpoint`` ends in 'checkpoint' too; other init_cfg
    # types (Kaiming, Normal, ...) have no such key.
    last = key.rsplit('.', 1)[-1]
    return key == 'load_from' or last == PRETRAINED_KEY or last.endswith(CHECKPOINT_KEY_ENDINGS)


def _initialises(key: str) -> bool:
    """Whether the weights under ``key`` initialise the model (mmengine's init_weights)."""
    names = key.split('.')
    return 'init_cfg' in names or names[-1] == PRETRAINED_KEY


def how_to_write(path: str, key: str) -> str:
    """The command that writes ``path`` when the suite knows it, else a generic hint.

    The suite's tools write into ``work_dirs/<config name>/`` by default, so a
    path there names the config whose run writes it.
    """
    parts = Path(path).parts
    if len(parts) >= 3 and parts[0] == WORK_DIRS:
        config = _config_named(parts[1])
        if config is not None:
            return f'it is written by: {_command_for(config)}'
        return (f'it is written by the search (tools/search.py) or training (tools/train.py) '
                f'run with --work-dir {WORK_DIRS}/{parts[1]}; run that first or set {key}')
    return f'put the file there or set {key} to a local file'


def _config_named(stem: str) -> Path | None:
    matches = sorted(CONFIG_DIR.glob(f'**/{stem}.py'))
    return matches[0] if matches else None


def _command_for(config: Path) -> str:
    from mmengine.config import Config

    try:
        tool = 'search' if is_search_config(Config.fromfile(str(config))) else 'train'
    except Exception:  # a broken config still names the right file; mmengine raises many kinds
        tool = 'search or train'
    return f'python tools/{tool}.py {config.relative_to(REPO)}'


# -- number of classes -----------------------------------------------------------
def check_num_classes(cfg, scope: str | None = None) -> None:
    """Fail with one line if a head's ``num_classes`` differs from its dataset's classes.

    The classes of each dataloader's dataset are known from its
    ``metainfo.classes``, else (COCO) from the categories of its annotation
    file, else from the dataset class's METAINFO, looked up in ``scope``'s
    registry (default: the config's ``default_scope``). A dataset whose
    classes cannot be known is not checked. A model without such heads (a
    search network that takes its classes from the training set) needs its
    splits to agree: the classes it learns are the ones it is scored on.
    """
    heads = list(_head_num_classes(cfg.get('model') or {}))
    scope = scope or cfg.get('default_scope')
    first: DatasetClasses | None = None
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if not loader or not isinstance(loader.get('dataset'), dict):
            continue
        for dataset_key, dataset in leaf_datasets(loader['dataset'], f'{split}_dataloader.dataset'):
            _check_named_classes(dataset, dataset_key)
            known = dataset_classes(dataset, dataset_key, scope)
            if known is None:
                continue
            for head_key, num_classes in heads:
                if num_classes != known.count:
                    raise NasError(f'{known.source} has {known.count} classes but {head_key} is '
                                   f'{num_classes}; set {head_key}={known.count}{known.also}')
            if first is None:
                first = known
            elif not heads and known.count != first.count:
                raise NasError(f'{first.source} has {first.count} classes but {known.source} has '
                               f'{known.count}; the model learns the classes of one split and is '
                               'scored on the other: give every split the same classes')


def _head_num_classes(model: dict) -> Iterator[tuple[str, int]]:
    """(``model.<head>.num_classes`` key, value) of each classifying head; lists of heads
    (cascade stages, several auxiliary heads) are keyed by index."""
    for head_path in CLASSIFYING_HEADS:
        node: Any = model
        for name in head_path.split('.'):
            node = node.get(name) if isinstance(node, dict) else None
        heads = node if isinstance(node, (list, tuple)) else [node]
        for index, head in enumerate(heads):
            if isinstance(head, dict) and isinstance(head.get('num_classes'), int):
                suffix = f'.{index}' if isinstance(node, (list, tuple)) else ''
                yield f'model.{head_path}{suffix}.num_classes', head['num_classes']


class DatasetClasses(NamedTuple):
    source: str  # where the classes come from, e.g. 'train_dataloader.dataset.metainfo.classes'
    count: int
    also: str = ''  # what else to set when num_classes is changed to match


def dataset_classes(dataset: dict, key: str, scope: str | None) -> DatasetClasses | None:
    """The classes of one dataset config, or None if they cannot be known without building it."""
    classes = (dataset.get('metainfo') or {}).get('classes')
    if classes is not None:
        return DatasetClasses(f'{key}.metainfo.classes', len(classes))
    categories = _annotation_categories(dataset)
    if categories is not None:
        path, names = categories
        # Without metainfo, mmdet keeps only the categories named in the dataset
        # class's METAINFO (COCO's 80): other data must name its classes.
        return DatasetClasses(f'{key}.ann_file ({path})', len(names),
                              f' and {key}.metainfo.classes to its category names')
    registered = _registered_classes(dataset.get('type'), scope)
    if registered is not None:
        return DatasetClasses(f"{dataset.get('type')}.METAINFO['classes'] ({key}.type)",
                              len(registered))
    return None


def _check_named_classes(dataset: dict, key: str) -> None:
    """``metainfo.classes`` must name categories of the COCO annotation file: mmdet
    silently keeps only those, so a misspelt or foreign class trains on nothing."""
    classes = (dataset.get('metainfo') or {}).get('classes')
    categories = _annotation_categories(dataset) if classes is not None else None
    if categories is None:
        return
    path, names = categories
    missing = [name for name in classes if name not in names]
    if missing:
        raise NasError(f"{key}.metainfo.classes names '{missing[0]}', but {path} has no such "
                       f"category; its categories are: {', '.join(names)}")


def _annotation_categories(dataset: dict) -> tuple[str, list[str]] | None:
    """(path, category names) of a COCO-style annotation file, if it exists."""
    if 'Coco' not in str(dataset.get('type')) or not isinstance(dataset.get('ann_file'), str):
        return None
    path = os.path.join(dataset.get('data_root') or '', dataset['ann_file'])
    if not os.path.isfile(path):
        return None  # the data-path check reports it
    stat = os.stat(path)
    names = _category_names(path, stat.st_size, stat.st_mtime_ns)
    return None if names is None else (path, list(names))


@functools.lru_cache(maxsize=32)
def _category_names(path: str, size: int, mtime_ns: int) -> tuple[str, ...] | None:
    """The category names of a COCO annotation file, read once per process and file version.

    Only the ``categories`` value is parsed where the file puts it first or
    last (COCO's own files: last, after 860k annotations in train2017), so
    the check reads kilobytes of a 450 MB file on every rank; another layout
    is parsed whole. ``size`` and ``mtime_ns`` key the cache.
    """
    categories = _top_level_value_at_an_end(path, 'categories')
    if categories is None:
        try:
            with open(path, encoding='utf-8') as f:
                categories = json.load(f).get('categories')
        except (OSError, ValueError, AttributeError):
            return None  # not COCO JSON: the dataset class reports it
    if not isinstance(categories, list):
        return None
    return tuple(str(category.get('name')) for category in categories
                 if isinstance(category, dict))


# How much of each end of an annotation file is read for a value placed there:
# from the first size, doubled up to the last (COCO's 80 categories take 8 KB).
END_READ_BYTES = (1 << 16, 1 << 24)


def _top_level_value_at_an_end(path: str, key: str) -> Any:
    """The value of ``key`` in the JSON object of file ``path``, if it is its first or last key.

    Parsed alone with ``json.JSONDecoder.raw_decode``. A first key follows the
    object's opening brace; a last one is followed by nothing but its closing
    brace, which makes it a key of the outermost object and not of a nested
    one. None when neither holds, or the file is not such JSON.
    """
    decoder = json.JSONDecoder()
    key_pattern = re.compile(r'"%s"\s*:\s*' % re.escape(key))
    read = END_READ_BYTES[0]
    try:
        with open(path, 'rb') as f:
            file_size = os.fstat(f.fileno()).st_size
            while True:
                f.seek(0)
                head = f.read(read).decode('utf-8', errors='replace')
                f.seek(max(0, file_size - read))
                tail = f.read().decode('utf-8', errors='replace')
                first = re.match(r'\s*\{\s*' + key_pattern.pattern, head)
                found = _value_at(decoder, head, first.end()) if first else None
                if found is None:
                    start = tail.rfind(f'"{key}"')
                    last = key_pattern.match(tail, start) if start >= 0 else None
                    found = _value_at(decoder, tail, last.end(), closes_object=True) if last else None
                if found is not None:
                    return found[0]
                if read >= file_size or read >= END_READ_BYTES[1]:
                    return None
                read *= 2
    except OSError:
        return None


def _value_at(decoder: json.JSONDecoder, text: str, index: int,
              closes_object: bool = False) -> tuple[Any] | None:
    """(the JSON value that starts at ``text[index]``,), or None if it is cut off or invalid;
    with ``closes_object``, only if nothing but the object's closing brace follows it."""
    try:
        value, end = decoder.raw_decode(text, index)
    except ValueError:
        return None
    if closes_object and not re.fullmatch(r'\s*\}\s*', text[end:]):
        return None
    return (value,)


def _registered_classes(type_name: Any, scope: str | None) -> tuple | None:
    """``METAINFO['classes']`` of a registered mmdet/mmseg dataset class, if it has one.

    Without a default scope (search configs have none), the class is looked
    up in every OpenMMLab registry and must be found in exactly one.
    """
    if not isinstance(type_name, str):
        return None
    from mmengine.registry import DATASETS

    if scope or '.' in type_name:
        found = [DATASETS.get(type_name if '.' in type_name else f'{scope}.{type_name}')]
    else:
        found = [child.get(type_name) for child in DATASETS.children.values()]
    classes = {dataset_class for dataset_class in found if dataset_class is not None}
    if len(classes) != 1:
        return None
    metainfo = getattr(classes.pop(), 'METAINFO', None) or {}
    return metainfo.get('classes')
