"""Keeping NaN and infinity out of a differentiable search.

One non-finite loss or gradient, once stepped on, turns every weight it
touches into NaN, and every later checkpoint with it. So each step checks its
loss and gradients before the optimizer runs, and every rank must find them
finite (a reduced flag): under DDP the ranks then skip together, or step
together, and never drift apart.
"""
from __future__ import annotations

from typing import Iterable, Mapping

import torch

from nas_tasks.dist import on_every_rank
from nas_tasks.errors import NasError


class NonFiniteStep(NasError):
    """A step whose loss or gradients were not finite; it was not taken.

    ``what`` names the step ('weight' or 'architecture') and what was not
    finite; the trainer adds where in the run it happened.
    """

    def __init__(self, what: str):
        super().__init__(f'non-finite {what}; the step was not taken')
        self.what = what


def _all_finite(tensors: Iterable[torch.Tensor | None]) -> bool:
    flags = [torch.isfinite(t).all() for t in tensors if t is not None]
    return bool(torch.stack(flags).all()) if flags else True  # one device sync, not one per tensor


def check_step(step: str, loss: torch.Tensor, grads: Iterable[torch.Tensor | None]) -> None:
    """Raise :class:`NonFiniteStep` unless ``loss`` and ``grads`` are finite on every rank."""
    loss_finite = bool(torch.isfinite(loss))
    grads_finite = _all_finite(grads)
    if on_every_rank(loss_finite and grads_finite):
        return
    if not loss_finite:
        what = f'{step} loss ({float(loss)})'
    elif not grads_finite:
        what = f'{step} gradient (loss {float(loss):.4g})'
    else:
        what = f'{step} loss or gradient on another rank'
    raise NonFiniteStep(what)


def non_finite_entries(state: Mapping[str, torch.Tensor]) -> list[str]:
    """The names of the floating-point tensors in ``state`` that hold NaN or infinity."""
    return [name for name, tensor in state.items()
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
