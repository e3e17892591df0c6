"""Deterministic mode (opt in): ``search.deterministic=True``.

Two GPU runs of the same search with the same seed already draw the same
candidates, but cuDNN picks its algorithms by timing (``benchmark``) and many
CUDA kernels (atomic adds in convolution and interpolation backward passes,
scatter/index_add) sum in a varying order, so the trained weights, and so the
scores, drift in the last bits and then further. Deterministic mode asks
torch for deterministic algorithms everywhere:

* ``torch.use_deterministic_algorithms(True)``: an operation with no
  deterministic implementation raises instead of running nondeterministically
  (on CUDA, for example, bilinear upsampling's backward pass, which the
  segmentation searches use); ``deterministic='warn'`` makes torch warn about
  such an operation instead (``warn_only=True``) and run everything else
  deterministically;
* ``torch.backends.cudnn.deterministic = True`` and ``benchmark = False``;
* ``CUBLAS_WORKSPACE_CONFIG=:4096:8``, which cuBLAS reads when it creates its
  first handle, so it is set before any CUDA work;
* the mmengine Runners that the search builds get
  ``randomness=dict(seed=..., deterministic=True)`` (:func:`runner_randomness`),
  so that their own setup agrees (and overrides ``env_cfg.cudnn_benchmark``).

What it costs: docs/reproducibility.md.
"""
from __future__ import annotations

import os

import torch

from nas_tasks.errors import NasError

__all__ = ['CUBLAS_WORKSPACE', 'WARN_ONLY', 'check_deterministic_setting', 'set_deterministic',
           'deterministic_enabled', 'runner_randomness']

CUBLAS_WORKSPACE = ':4096:8'  # the setting torch's documentation gives for deterministic cuBLAS

_mode: bool | str = False  # False, True or WARN_ONLY


WARN_ONLY = 'warn'


def check_deterministic_setting(value, where: str) -> bool | str:
    """``value`` of the setting ``where``: True, False or 'warn'; anything else is one line."""
    if not isinstance(value, bool) and value != WARN_ONLY:
        raise NasError(f"{where} must be True, False or '{WARN_ONLY}', got {value!r}: True makes "
                       'the search use deterministic algorithms only (slower on a GPU), '
                       f"'{WARN_ONLY}' warns about an operation that has none instead of "
                       "stopping, False leaves them to torch's defaults")
    return value


def set_deterministic(enabled: bool | str) -> None:
    """Turn deterministic mode on for this process: True, or 'warn' (torch warns about an
    operation without a deterministic implementation instead of raising); False leaves
    torch's settings as they are."""
    global _mode
    _mode = enabled
    if not enabled:
        return
    # Read by cuBLAS when its first handle is made: before any CUDA work.
    os.environ['CUBLAS_WORKSPACE_CONFIG'] = CUBLAS_WORKSPACE
    torch.use_deterministic_algorithms(True, warn_only=enabled == WARN_ONLY)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def deterministic_enabled() -> bool:
    return bool(_mode)


def runner_randomness(seed: int) -> dict:
    """An mmengine Runner's ``randomness`` for a Runner the search builds.

    ``deterministic=True`` in the strict mode only: mmengine's own call would
    turn 'warn' into strict; in 'warn' mode the process-wide flags set by
    :func:`set_deterministic` stand.
    """
    return dict(seed=seed, deterministic=_mode is True)
