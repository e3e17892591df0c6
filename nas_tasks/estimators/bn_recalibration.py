"""Batch-norm recalibration for candidates that inherit supernet weights.

Shared BN statistics were accumulated over many different paths, so they do
not match any single candidate. Following SPOS and DetNAS, the statistics are
reset and re-estimated on a few training batches, forward only.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..errors import NasError


def recalibrate_batch_norm(model: nn.Module, batches: Iterable, forward: Callable[[object], object]) -> int:
    """Reset every BN's running statistics and re-estimate them on ``batches``.

    ``forward(batch)`` runs the model on one batch; it must go through every
    part whose BNs count (a detector's backbone, neck and head). Momentum is
    set to None during recalibration, so the statistics are the exact average
    over the batches rather than an exponential average biased to the last
    ones.

    Each BN is put in train mode explicitly and every other module in eval
    mode (as when the candidate is scored), instead of calling
    ``model.train()``: backbones with ``norm_eval`` or ``frozen_stages``
    override ``train()`` to keep their BNs in eval mode, which would leave
    those statistics at their reset values. Every module's mode, and every
    BN's momentum, is restored afterwards. BNs without running statistics
    (``track_running_stats=False``) always normalise by the batch and are left
    alone. Returns the number of batches used.

    Raises :class:`NasError` for a normalisation layer with running statistics
    that is not a torch BN (e.g. torchvision's FrozenBatchNorm2d), which cannot
    be re-estimated, or when ``batches`` is empty.
    """
    norms = _batch_norms_with_running_stats(model)
    saved_modes = [(module, module.training) for module in model.modules()]
    saved_momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    model.eval()
    for norm in norms:
        norm.train()
    count = 0
    try:
        with torch.no_grad():
            for batch in batches:
                forward(batch)
                count += 1
    finally:
        for norm, momentum in zip(norms, saved_momenta):
            norm.momentum = momentum
        for module, training in saved_modes:
            module.training = training
    if count == 0:
        raise NasError('BN recalibration got no batches: the training split it reads is empty')
    return count


def _batch_norms_with_running_stats(model: nn.Module) -> list[_BatchNorm]:
    norms = []
    for name, module in model.named_modules():
        if isinstance(module, _BatchNorm):
            if module.track_running_stats:
                norms.append(module)
        elif isinstance(getattr(module, 'running_mean', None), torch.Tensor):
            raise NasError(f'cannot recalibrate the BN statistics of {name or "the model"} '
                           f'({type(module).__name__}): only torch BatchNorm layers can be '
                           're-estimated; use a BN layer (norm_cfg=dict(type="BN")) in the supernet')
    return norms
