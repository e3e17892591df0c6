"""Mixed precision and synchronised BatchNorm for the differentiable trainer.

Mixed precision (``amp=True``): the forward passes run under autocast,
float16 on CUDA, bfloat16 on the CPU (the CPU's autocast type). float16's
small range needs loss scaling: its losses are multiplied by torch's
GradScaler before ``backward()``, the gradients divided again before the
step, and a step whose scaled gradients overflowed is skipped while the scale
is lowered. bfloat16 has float32's range, so the CPU runs without a scaler.
"""
from __future__ import annotations

import contextlib
from typing import ContextManager

import torch
from torch import nn

from nas_tasks import dist
from nas_tasks.differentiable.finite import NonFiniteStep
from nas_tasks.errors import NasError

# A loss scale that fell this low means the gradients are NaN or infinite at
# any scale: a diverged run, not a float16 overflow (the scale starts at 2**16).
MIN_LOSS_SCALE = 2.0 ** -8


class Precision:
    """Autocast around the forward passes and, for float16, loss scaling.

    With ``amp=False`` every method is the plain full-precision operation.
    ``dtype`` defaults to the device's: float16 on CUDA, bfloat16 elsewhere;
    losses are scaled whenever it is float16.
    """

    def __init__(self, amp: bool, device: torch.device, dtype: torch.dtype | None = None):
        self.enabled = amp
        self.device_type = device.type
        self.dtype = dtype or (torch.float16 if device.type == 'cuda' else torch.bfloat16)
        self.scaler = (torch.amp.GradScaler(device.type)
                       if amp and self.dtype == torch.float16 else None)

    @property
    def scaler_checks_gradients(self) -> bool:
        """True when overflowing gradients are the scaler's to skip, not an error."""
        return self.scaler is not None

    def autocast(self) -> ContextManager:
        """Where the forward passes run: autocast, or nothing when amp is off."""
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None:
        """Divide ``optimizer``'s gradients by the loss scale (before clipping or stepping)."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """``optimizer.step()``, skipped by the scaler when its gradients overflowed."""
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)

    def update(self) -> None:
        """Once per iteration: the scaler adapts its scale; a scale gone to nothing stops the run."""
        if self.scaler is None:
            return
        self.scaler.update()
        scale = self.scaler.get_scale()
        if scale < MIN_LOSS_SCALE:
            raise NonFiniteStep(f'gradients at every loss scale (the float16 loss scale fell to '
                                f'{scale:g})')

    def state_dict(self) -> dict | None:
        return None if self.scaler is None else self.scaler.state_dict()

    def load_state_dict(self, state: dict | None) -> None:
        """The scaler's state from a checkpoint; a run without a scaler, or a checkpoint without one, skips it."""
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


def check_amp_settings(amp: bool, second_order: bool) -> None:
    if not isinstance(amp, bool):
        raise NasError(f'amp must be True or False, got {amp!r}')
    if amp and second_order:
        # The Hessian term is a difference of two gradients at weights 0.01
        # apart; in half precision it would be rounding noise.
        raise NasError('amp=True cannot be combined with second_order=True: the unrolled step '
                       'takes finite differences that half precision drowns in rounding; set '
                       'amp=False or second_order=False')


def sync_batch_norm(model: nn.Module, sync_bn: bool) -> nn.Module:
    """``model`` with its BatchNorm layers synchronised across ranks when ``sync_bn`` asks for it.

    Converted only under torch.distributed with more than one rank (one
    process has nothing to synchronise with). torch's SyncBatchNorm runs on
    CUDA only, so a model on the CPU is refused whatever the world size: the
    setting could never take effect there. The converted layers keep the
    same parameter objects, so optimizers may be built before or after.
    """
    if not isinstance(sync_bn, bool):
        raise NasError(f'sync_bn must be True or False, got {sync_bn!r}')
    if not sync_bn:
        return model
    if not on_cuda(model):
        device = next(model.parameters()).device.type
        raise NasError(f'sync_bn=True: torch\'s SyncBatchNorm runs on CUDA only and the search '
                       f'model is on the {device.upper()}; set sync_bn=False')
    if dist.get_world_size() > 1:
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def on_cuda(model: nn.Module) -> bool:
    return next(model.parameters()).device.type == 'cuda'
