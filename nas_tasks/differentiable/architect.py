"""The architecture step of a bilevel (DARTS) search: first or second order.

Every gradient is taken with ``loss.backward()`` through ``forward`` (the
model, or its DistributedDataParallel wrapper), never with
``torch.autograd.grad``, so that under DDP both the weight and the
architecture gradients are averaged across ranks and all ranks take the same
step.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import nn

from nas_tasks.differentiable.finite import check_step
from nas_tasks.errors import NasError

Batch = Any


def zero_grads(params: Sequence[nn.Parameter]) -> None:
    for param in params:
        param.grad = None


def backward_loss(forward: Callable[[Batch], torch.Tensor], batch: Batch,
                  params: Sequence[nn.Parameter]) -> torch.Tensor:
    """Clear the grads of ``params``, then back-propagate ``forward(batch)``; the detached loss."""
    zero_grads(params)
    loss = forward(batch)
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        raise NasError('the search model must return a scalar loss tensor from model(batch), '
                       f'got {type(loss).__name__} {tuple(getattr(loss, "shape", ()))}')
    loss.backward()
    return loss.detach()


def _grads(params: Sequence[nn.Parameter]) -> list[torch.Tensor | None]:
    return [None if p.grad is None else p.grad.detach().clone() for p in params]


class Architect:
    """Updates the architecture parameters on a batch of the architecture half.

    First order: the gradient of the architecture-half loss at the current
    weights. Second order (DARTS, Liu et al. 2019, eq. 7-8): the gradient of
    the unrolled objective ``L_val(w', alpha)`` with the virtual weight step
    ``w' = w - xi * d(w, alpha)``, where ``d`` is exactly what the weight
    optimizer (torch's SGD) would apply for the weight-half gradient
    ``grad_w L_train(w, alpha)`` (momentum buffer, weight decay, dampening,
    nesterov included; no gradient clipping, as in DARTS) and ``xi`` the
    current weight learning rate::

        grad_alpha L_val(w', alpha) - xi * H v,  v = grad_w' L_val(w', alpha),
        H v ~ (grad_alpha L_train(w + eps v) - grad_alpha L_train(w - eps v)) / (2 eps),
        eps = 0.01 / ||v||

    (the official code's central difference; 0.01 is :attr:`radius`, the
    length of the weight perturbation). With several parameter groups,
    or momentum/dampening/nesterov scaling the fresh gradient, ``xi * v`` is
    ``d w'/d grad`` applied per parameter, which reduces to the above for one
    group. Weights without a gradient (ops off the sampled single path) stay
    put in the virtual step, as the optimizer skips them.

    The forward passes update BatchNorm running statistics like any training
    forward; weights are restored bit for bit after the virtual steps.
    """

    radius = 0.01

    def __init__(self, forward: Callable[[Batch], torch.Tensor], weights: Sequence[nn.Parameter],
                 arch: Sequence[nn.Parameter], weight_optimizer: torch.optim.Optimizer,
                 arch_optimizer: torch.optim.Optimizer, second_order: bool = False):
        self.forward = forward
        self.weights = list(weights)
        self.arch = list(arch)
        self.weight_optimizer = weight_optimizer
        self.arch_optimizer = arch_optimizer
        self.second_order = second_order
        if second_order:
            check_virtual_step_optimizer(weight_optimizer)

    @property
    def _all(self) -> list[nn.Parameter]:
        return self.weights + self.arch

    def step(self, arch_batch: Batch, weight_batch: Batch | None = None) -> float:
        """One architecture update; returns the architecture-half loss.

        ``weight_batch`` (needed in second order) is the weight-half batch of
        the same iteration, as in DARTS. A non-finite loss or gradient (on any
        rank) raises :class:`NonFiniteStep` before the architecture moves.
        """
        if self.second_order:
            loss, grads = self.unrolled_grads(arch_batch, weight_batch)
        else:
            loss = backward_loss(self.forward, arch_batch, self._all)
            grads = _grads(self.arch)
        zero_grads(self._all)
        check_step('architecture', loss, grads)
        for param, grad in zip(self.arch, grads):
            param.grad = grad
        self.arch_optimizer.step()
        zero_grads(self.arch)
        return float(loss)

    def unrolled_grads(self, arch_batch: Batch, weight_batch: Batch
                       ) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        """``(L_val(w'), d L_val(w'(alpha), alpha) / d alpha)``; weights unchanged afterwards."""
        if weight_batch is None:
            raise ValueError('a second-order architecture step needs the weight-half batch')
        saved = [w.detach().clone() for w in self.weights]
        backward_loss(self.forward, weight_batch, self._all)
        virtual, scales = virtual_sgd_step(self.weight_optimizer, self.weights)
        try:
            _assign(self.weights, virtual)
            del virtual
            loss = backward_loss(self.forward, arch_batch, self._all)
            arch_grads = _grads(self.arch)
            # xi * v per parameter: the direction of the Hessian-vector product.
            direction = [None if w.grad is None or scale is None else scale * w.grad.detach()
                         for w, scale in zip(self.weights, scales)]
            norm = torch.sqrt(sum((d.double() ** 2).sum() for d in direction if d is not None)
                              ) if any(d is not None for d in direction) else None
            if norm is not None and float(norm) > 0:
                eps = self.radius / norm
                plus = self._arch_grads_at(saved, direction, eps, weight_batch)
                minus = self._arch_grads_at(saved, direction, -eps, weight_batch)
                arch_grads = [_hessian_corrected(g, p, m, eps)
                              for g, p, m in zip(arch_grads, plus, minus)]
        finally:
            _assign(self.weights, saved)
        return loss, arch_grads

    def _arch_grads_at(self, saved: list[torch.Tensor], direction: list[torch.Tensor | None],
                       eps: torch.Tensor, batch: Batch) -> list[torch.Tensor | None]:
        """grad_alpha L_train at ``w + eps * direction``."""
        _assign(self.weights, [w if d is None else w + (eps * d.double()).to(w.dtype)
                               for w, d in zip(saved, direction)])
        backward_loss(self.forward, batch, self._all)
        return _grads(self.arch)


def _hessian_corrected(grad, plus, minus, eps):
    """``grad - (plus - minus) / (2 eps)``, where a missing gradient counts as zero."""
    if plus is None and minus is None:
        return grad
    reference = next(g for g in (grad, plus, minus) if g is not None)
    plus = torch.zeros_like(reference) if plus is None else plus
    minus = torch.zeros_like(reference) if minus is None else minus
    grad = torch.zeros_like(reference) if grad is None else grad
    return grad - ((plus - minus).double() / (2 * eps)).to(grad.dtype)


def _assign(params: Sequence[nn.Parameter], values: Sequence[torch.Tensor]) -> None:
    with torch.no_grad():
        for param, value in zip(params, values):
            param.copy_(value)


def check_virtual_step_optimizer(optimizer: torch.optim.Optimizer) -> None:
    """Second order simulates the weight optimizer's step, which only SGD allows here."""
    if type(optimizer) is not torch.optim.SGD:
        raise NasError('second_order=True simulates a weight step of SGD (DARTS); set '
                       f"weight_optimizer type='SGD' (got {type(optimizer).__name__}) or "
                       'second_order=False')
    if any(group.get('maximize') for group in optimizer.param_groups):
        raise NasError('second_order=True needs weight_optimizer maximize=False')


def virtual_sgd_step(optimizer: torch.optim.SGD, weights: Sequence[nn.Parameter]
                     ) -> tuple[list[torch.Tensor], list[float | None]]:
    """What ``optimizer.step()`` would make of ``weights`` for their current grads.

    Returns the stepped values (the optimizer and the weights are left
    untouched) and, per weight, the factor ``d w' / d grad`` (a number, as
    torch's SGD is linear in the grad; None where the weight has no grad and
    the step would skip it).
    """
    groups = {id(p): group for group in optimizer.param_groups for p in group['params']}
    stepped, scales = [], []
    with torch.no_grad():
        for weight in weights:
            group = groups.get(id(weight))
            if weight.grad is None or group is None:
                stepped.append(weight.detach().clone())
                scales.append(None)
                continue
            lr, momentum = group['lr'], group['momentum']
            dampening, nesterov = group['dampening'], group['nesterov']
            update = weight.grad + group['weight_decay'] * weight
            factor = 1.0
            if momentum:
                buffer = optimizer.state.get(weight, {}).get('momentum_buffer')
                if buffer is None:
                    velocity = update
                else:
                    velocity = momentum * buffer + (1 - dampening) * update
                    factor = 1 - dampening
                if nesterov:
                    update = update + momentum * velocity
                    factor = 1 + momentum * factor
                else:
                    update = velocity
            stepped.append(weight - lr * update)
            scales.append(lr * factor)
    return stepped, scales
