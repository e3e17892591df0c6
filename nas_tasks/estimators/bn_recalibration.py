"""Batch-norm recalibration for candidates that inherit supernet weights.

Shared BN statistics were accumulated over many different paths, so they do
not match any single candidate. Following SPOS and DetNAS, the statistics are
reset and re-estimated on a few training batches, forward only.

A SyncBatchNorm (the DetNAS supernet's on GPUs) is recalibrated as the plain
BN it is on one process: every rank recalibrates its own candidate, so its
statistics come from its own batches, with no collective across ranks.
"""
from __future__ import annotations

import types
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

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
    alone. A ``SyncBatchNorm`` normalises by this process's batch only (see
    :func:`_without_sync`), so the statistics equal those of the same network
    built with BN. Returns the number of batches used.

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
        with torch.no_grad(), _without_sync(norms):
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


@contextmanager
def _without_sync(norms: list[_BatchNorm]) -> Iterator[None]:
    """Run every SyncBatchNorm of ``norms`` as a plain BN (``_BatchNorm.forward``).

    In train mode torch's SyncBatchNorm all-reduces its batch statistics over
    the process group, which would mix the statistics of the different
    candidates that the ranks recalibrate at the same time (and hang when ranks
    hold different numbers of candidates); on a CPU it refuses to run at all
    once a group exists. Its parameters and buffers are a BN's, so BN's own
    forward gives this process's statistics. The instance attribute shadows
    the class's forward and is removed afterwards.
    """
    synced = [norm for norm in norms if isinstance(norm, nn.SyncBatchNorm)]
    for norm in synced:
        norm.forward = types.MethodType(_BatchNorm.forward, norm)
    try:
        yield
    finally:
        for norm in synced:
            del norm.forward


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
