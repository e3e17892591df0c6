"""The plain config of an exported model: the task config with no search in it.

It keeps everything an mmdet or mmseg tool needs (model, data pipelines,
dataloaders, evaluators, runtime) and drops what belongs to the search: the
search keys, the ``search_dir`` variable the project's configs point at a work
dir with, weight files the model would load in ``init_weights`` (the exported
checkpoint holds every weight) and run state (``load_from``, ``resume``).
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from mmengine.config import Config

from nas_tasks.config_checks import _walk as walk_config  # every (dotted key, leaf)
from nas_tasks.errors import NasError
from nas_tasks.export.adapter import ExportAdapter
from nas_tasks.export.found import FoundModel
from nas_tasks.search import SEARCH_KEYS

# A differentiable search config has this key instead of SEARCH_KEYS.
DIFFERENTIABLE_SEARCH_KEY = 'differentiable_search'
# Sections that other tools of the suite read from a search config (tools/diagnose.py).
SEARCH_TOOL_KEYS = ('diagnose',)
# The variable the project's configs hold the search work dir in.
SEARCH_DIR_VARIABLE = 'search_dir'
RUN_STATE_KEYS = ('load_from', 'resume', 'work_dir', 'launcher')
SEARCH_FILE_SUFFIXES = ('.json', '.jsonl', '.pth')


def plain_config(task_cfg: Config, adapter: ExportAdapter) -> Config:
    cfg = task_cfg.to_dict() if adapter.keeps_task_config else {}
    for key in (*SEARCH_KEYS, DIFFERENTIABLE_SEARCH_KEY, *SEARCH_TOOL_KEYS, SEARCH_DIR_VARIABLE,
                *RUN_STATE_KEYS):
        cfg.pop(key, None)
    cfg['model'] = without_weight_files(adapter.plain_model_cfg())
    cfg['default_scope'] = adapter.scope
    imports = dict(cfg.get('custom_imports') or {})
    names = list(imports.get('imports') or [])
    names += [name for name in adapter.plain_imports if name not in names]
    if names:
        cfg['custom_imports'] = dict(imports, imports=names, allow_failed_imports=False)
    _add_missing_loops(cfg)
    return Config(cfg)


def without_weight_files(model_cfg: dict) -> dict:
    """``model_cfg`` without ``Pretrained`` init configs and ``pretrained`` paths, anywhere."""
    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            result = {}
            for key, value in node.items():
                if key == 'init_cfg':
                    value = _without_pretrained(value)
                elif key == 'pretrained' and isinstance(value, str):
                    value = None
                result[key] = strip(value)
            return result
        if isinstance(node, (list, tuple)):
            return type(node)(strip(item) for item in node)
        return node
    return strip(copy.deepcopy(model_cfg))


def _without_pretrained(init_cfg: Any) -> Any:
    if isinstance(init_cfg, dict):
        return None if init_cfg.get('type') == 'Pretrained' else init_cfg
    if isinstance(init_cfg, (list, tuple)):
        kept = [item for item in init_cfg if _without_pretrained(item) is not None]
        return kept or None
    return init_cfg


def _add_missing_loops(cfg: dict) -> None:
    """A search config's test split has no loop (the search evaluates it itself):
    add mmengine's, so that tools/test.py runs the exported config."""
    for split, loop in (('val', 'ValLoop'), ('test', 'TestLoop')):
        if cfg.get(f'{split}_dataloader') and cfg.get(f'{split}_evaluator') \
                and not cfg.get(f'{split}_cfg'):
            cfg[f'{split}_cfg'] = dict(type=loop)


def check_no_search_code(cfg: Config, text: str, adapter: ExportAdapter, found: FoundModel) -> None:
    """Refuse a plain config that names a search module or a file of the search."""
    for type_name in adapter.search_types:
        if f"'{type_name}'" in text:
            raise NasError(f'the exported config names the search module {type_name}; '
                           'the export must build the fixed module only')
    work_dir = found.work_dir.resolve()
    # The search's outputs lie in its work dir and one level down (supernet/); a data
    # folder that happens to lie below it is not one of them.
    output_dirs = {work_dir, *(path for path in work_dir.iterdir() if path.is_dir())}
    for key, value in walk_config(cfg.to_dict(), ''):
        if not isinstance(value, str) or not value:
            continue
        path = Path(value).expanduser().resolve()
        if path == work_dir or (path.suffix in SEARCH_FILE_SUFFIXES and path.parent in output_dirs):
            raise NasError(f"the exported config's {key} points at the search's files "
                           f'({value}); the export must not depend on them')
