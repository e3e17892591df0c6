"""Loading torch checkpoints safely (weights_only), and keeping mmengine's loadable that way."""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from nas_tasks.errors import NasError, first_line


def safe_torch_load(path: Path) -> Any:
    """``torch.load`` with ``weights_only=True``; a clear NasError for bad files."""
    path = Path(path)
    if not path.is_file():
        raise NasError(f'checkpoint not found: {path}')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as error:
        raise NasError(f'cannot read checkpoint {path}: {first_line(error)}') from error


@HOOKS.register_module()
class WeightsOnlyCheckpointHook(Hook):
    """Keeps mmengine Runner checkpoints loadable with ``weights_only=True``.

    torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine
    0.10 then fails on its own checkpoints: the message hub pickles
    ``HistoryBuffer`` objects (whose bound methods need ``getattr``, which
    cannot be allowed safely) and NumPy scalars. This drops the logging
    history (mmengine skips it on resume anyway when absent) and turns NumPy
    values into Python ones, so ``--resume``, ``load_from`` and Pretrained
    init keep working without unsafe unpickling.
    """

    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        message_hub = checkpoint.get('message_hub')
        if isinstance(message_hub, dict):
            message_hub['log_scalars'] = {}
            message_hub['runtime_info'] = _to_python(message_hub.get('runtime_info', {}))
        if 'meta' in checkpoint:
            checkpoint['meta'] = _to_python(checkpoint['meta'])


def _to_python(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _to_python(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_python(item) for item in value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
