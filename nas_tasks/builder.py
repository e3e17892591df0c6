"""Building search components from an mmengine config, with clear errors."""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from mmengine.config import Config, DictAction  # noqa: F401  (DictAction re-exported for tools)
from mmengine.registry import Registry

from nas_tasks.data_paths import leaf_datasets
from nas_tasks.errors import NasError, first_line


def load_config(path: str, cfg_options: dict | None = None) -> Config:
    """Read an mmengine Python config; one clear line if it is missing or broken."""
    if not Path(path).is_file():
        raise NasError(f'config file not found: {path}')
    try:
        cfg = Config.fromfile(path)
    except Exception as error:  # mmengine raises many kinds for a broken config
        raise NasError(f'cannot read config {path}: {first_line(error)}') from error
    if cfg_options:
        cfg_options = dict(cfg_options)
        data_root = cfg_options.pop('data_root', None)
        cfg.merge_from_dict(cfg_options)
        if data_root is not None:
            apply_data_root(cfg, str(data_root))
    return cfg


def build_component(registry: Registry, cfg: dict | None, what: str,
                    default_args: dict | None = None) -> Any:
    """Build ``cfg`` from ``registry``; unknown types and settings are NasErrors.

    ``what`` names the config key (e.g. ``'strategy'``) in error messages.
    """
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise NasError(f"config key '{what}' must be a dict with a 'type'")
    cfg = dict(cfg)
    type_name = cfg.pop('type')
    cls = registry.get(type_name) if isinstance(type_name, str) else type_name
    if cls is None:
        known = ', '.join(sorted(registry.module_dict)) or 'none'
        raise NasError(f"unknown {what} type '{type_name}'; registered types: {known}")
    accepted = _accepted_arguments(cls)
    if accepted is not None:
        check_settings(cfg, accepted - set(default_args or {}), f"{what} '{type_name}'")
    args = dict(default_args or {})
    args.update(cfg)
    if accepted is not None:
        args = {k: v for k, v in args.items() if k in accepted}
    missing = [name for name in _required_arguments(cls) if name not in args]
    if missing:
        raise NasError(f"{what} '{type_name}' needs the setting '{missing[0]}'; add "
                       f"{missing[0]}=... to the config's {what}")
    return cls(**args)


def check_settings(settings: dict, accepted, what: str) -> None:
    """A NasError naming the first key of ``settings`` that is not ``accepted``."""
    unknown = sorted(set(settings) - set(accepted))
    if unknown:
        raise NasError(f"{what} has no setting '{unknown[0]}'; its settings are: "
                       f"{', '.join(sorted(accepted)) or 'none'}")


def settings_of(target, supplied: tuple[str, ...] = ()) -> set[str]:
    """Keyword arguments a config may set for ``target``: all but those the code ``supplied``."""
    accepted = _accepted_arguments(target)
    if accepted is None:
        raise TypeError(f'{target} takes **kwargs; its settings cannot be listed')
    return accepted - set(supplied)


def _accepted_arguments(cls) -> set[str] | None:
    """Keyword arguments of ``cls``; None when it takes ``**kwargs``."""
    parameters = inspect.signature(cls).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _required_arguments(cls) -> list[str]:
    """Keyword arguments of ``cls`` that have no default."""
    parameters = inspect.signature(cls).parameters.values()
    return [p.name for p in parameters
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is p.empty]




def apply_data_root(cfg: Config, data_root: str) -> None:
    """Point every dataloader and evaluator of an mmdet/mmseg config at ``data_root``.

    Base configs bake ``data_root`` into each dataset when they are read, so
    overriding the top-level variable alone would change nothing. Wrapped
    datasets (``RepeatDataset``, ``ConcatDataset``) are moved, not their wrapper.
    """
    data_root = data_root if data_root.endswith('/') else data_root + '/'
    old_root = cfg.get('data_root')
    cfg.data_root = data_root
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if loader and loader.get('dataset') is not None:
            for _, dataset in leaf_datasets(loader.dataset):
                dataset['data_root'] = data_root
        evaluator = cfg.get(f'{split}_evaluator')
        if isinstance(evaluator, dict) and isinstance(evaluator.get('ann_file'), str) and old_root:
            if evaluator.ann_file.startswith(old_root):
                evaluator.ann_file = data_root + evaluator.ann_file[len(old_root):]
