"""The global random generators' states, in a form ``torch.load(weights_only=True)`` reads.

A differentiable search draws from the global generators (dropout, data
augmentation in the main process); saving and restoring them with each
checkpoint makes a resumed run continue exactly where the interrupted one was.
"""
from __future__ import annotations

import random

import numpy as np
import torch


def capture_rng_state() -> dict:
    """Python's, NumPy's, torch's CPU and (when initialised) CUDA generator states.

    Only plain Python values and tensors: NumPy's key array becomes a list.
    """
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    state = dict(python=random.getstate(),
                 numpy=dict(kind=str(kind), keys=[int(k) for k in keys], position=int(position),
                            has_gauss=int(has_gauss), cached_gaussian=float(cached_gaussian)),
                 torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    """The inverse of :func:`capture_rng_state`."""
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    numpy = state['numpy']
    np.random.set_state((numpy['kind'], np.asarray(numpy['keys'], dtype=np.uint32),
                         numpy['position'], numpy['has_gauss'], numpy['cached_gaussian']))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])
