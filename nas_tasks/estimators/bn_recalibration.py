"""Batch-norm recalibration for candidates that inherit supernet weights.

Shared BN statistics were accumulated over many different paths, so they do
not match any single candidate. Following SPOS and DetNAS, the statistics are
reset and re-estimated on a few training batches, forward only.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn


def recalibrate_batch_norm(model: nn.Module, batches: Iterable, forward: Callable[[object], object]) -> int:
    """Reset every BN's running statistics and re-estimate them on ``batches``.

    ``forward(batch)`` runs the model on one batch. Momentum is set to None
    during recalibration, so the statistics are the exact average over the
    batches rather than an exponential average biased to the last ones.
    Returns the number of batches used.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved_momentum = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    was_training = model.training
    model.train()
    count = 0
    try:
        with torch.no_grad():
            for batch in batches:
                forward(batch)
                count += 1
    finally:
        for norm, momentum in zip(norms, saved_momentum):
            norm.momentum = momentum
        model.train(was_training)
    return count
