"""The architecture step of a bilevel (DARTS) search: first or second order.

A first-order step computes no weight gradient: the weights are frozen
(``requires_grad`` off) for its forward and backward, as the official FNA
code's ``set_param_grad_state`` does, so backward stops at the architecture
parameters. It runs the bare model (``module``), outside the
DistributedDataParallel wrapper whose gradient hooks expect every weight's
gradient, and averages the architecture gradients over the ranks itself (one
all-reduce), so all ranks take the same step. A second-order step needs the
weight gradients (its virtual step and Hessian term) and takes every
gradient with ``loss.backward()`` through ``forward`` (the model, or its
DDP wrapper), which averages both kinds over the ranks.

An architecture cost (``cost``: a scalar function of the architecture
parameters, e.g. FNA's expected latency) joins the architecture-half loss of
every architecture step, never a weight step.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Sequence

import torch
from torch import nn

from nas_tasks import dist
from nas_tasks.differentiable.finite import check_step
from nas_tasks.differentiable.precision import Precision
from nas_tasks.errors import NasError

Batch = Any


def zero_grads(params: Sequence[nn.Parameter]) -> None:
    for param in params:
        param.grad = None


@contextlib.contextmanager
def frozen(params: Sequence[nn.Parameter]):
    """``params`` take no gradient inside (backward computes none for them)."""
    for param in params:
        param.requires_grad_(False)
    try:
        yield
    finally:
        for param in params:
            param.requires_grad_(True)


def backward_loss(forward: Callable[[Batch], torch.Tensor], batch: Batch,
                  params: Sequence[nn.Parameter], precision: Precision | None = None,
                  cost: Callable[[], torch.Tensor] | None = None, scale: float = 1.0
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Clear the grads of ``params``, then back-propagate ``forward(batch)`` (plus ``cost()``).

    ``forward`` runs under ``precision``'s autocast, and its loss is scaled
    if ``precision`` scales losses; ``cost``, a function of the architecture
    parameters, runs in full precision. One ``backward()`` for both, so DDP
    sees one backward pass. ``scale`` multiplies what is back-propagated (a
    micro-batch's share of an accumulated step: ``1 / accumulative_counts``);
    gradients add up in ``.grad`` over calls that clear nothing. Returns the
    detached (unscaled) loss and cost (None without one).
    """
    zero_grads(params)
    if precision is None:
        loss = forward(batch)
    else:
        with precision.autocast():
            loss = forward(batch)
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        raise NasError('the search model must return a scalar loss tensor from model(batch), '
                       f'got {type(loss).__name__} {tuple(getattr(loss, "shape", ()))}')
    total, extra = loss, None
    if cost is not None:
        extra = cost()
        if not isinstance(extra, torch.Tensor) or extra.dim() != 0:
            raise NasError('the search model\'s arch_cost() must return a scalar tensor, got '
                           f'{type(extra).__name__} {tuple(getattr(extra, "shape", ()))}')
        total = loss + extra
    if scale != 1.0:
        total = total * scale
    if precision is None:
        total.backward()
    else:
        precision.backward(total)
    return loss.detach(), None if extra is None else extra.detach()


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

    ``cost()``, when given, is added to the architecture-half loss
    (``L_val``) before back-propagation, in first and second order; it is
    independent of the weights, so the Hessian term does not see it.

    ``grad_clip``, when given, clips the architecture gradients (the cost's
    included, averaged over the ranks) to that total L2 norm before the step,
    as the official FNA search's architecture optimizer hook does (35).

    With ``precision`` (first order only; the trainer refuses amp with second
    order) the forward runs under autocast and the loss is scaled; a step
    whose scaled gradients overflowed is skipped by the scaler.

    The forward passes update BatchNorm running statistics like any training
    forward; weights are restored bit for bit after the virtual steps.

    ``module`` is the bare model the first-order step runs with the weights
    frozen (default: ``forward``); under DDP the trainer passes the model
    inside the wrapper, and the architecture gradients are then averaged over
    the ranks here. A first-order step may accumulate several micro-batches
    (:meth:`step_accumulated`): each one's loss divided by their number, one
    step, as one step on their concatenation.
    """

    radius = 0.01

    def __init__(self, forward: Callable[[Batch], torch.Tensor], weights: Sequence[nn.Parameter],
                 arch: Sequence[nn.Parameter], weight_optimizer: torch.optim.Optimizer,
                 arch_optimizer: torch.optim.Optimizer, second_order: bool = False,
                 cost: Callable[[], torch.Tensor] | None = None,
                 precision: Precision | None = None,
                 module: Callable[[Batch], torch.Tensor] | None = None,
                 grad_clip: float | None = None):
        self.forward = forward
        self.module = forward if module is None else module
        self.weights = list(weights)
        self.arch = list(arch)
        self.weight_optimizer = weight_optimizer
        self.arch_optimizer = arch_optimizer
        self.second_order = second_order
        self.cost = cost
        self.grad_clip = grad_clip
        self.precision = precision or Precision(False, torch.device('cpu'))
        if second_order:
            check_virtual_step_optimizer(weight_optimizer)
            if self.precision.enabled:
                raise NasError('a second-order architecture step runs in full precision; '
                               'pass no amp precision')

    @property
    def _all(self) -> list[nn.Parameter]:
        return self.weights + self.arch

    def step(self, arch_batch: Batch, weight_batch: Batch | None = None
             ) -> tuple[float, float | None]:
        """One architecture update; returns the architecture-half loss and the cost (or None).

        ``weight_batch`` (needed in second order) is the weight-half batch of
        the same iteration, as in DARTS. A non-finite loss or gradient (on any
        rank) raises :class:`NonFiniteStep` before the architecture moves.
        """
        return self.step_accumulated([arch_batch], weight_batch)

    def step_accumulated(self, arch_batches: Sequence[Batch], weight_batch: Batch | None = None
                         ) -> tuple[float, float | None]:
        """:meth:`step` on the micro-batches ``arch_batches`` accumulated (first order only
        for more than one); returns their mean loss and the cost."""
        if self.second_order:
            if len(arch_batches) != 1:
                raise ValueError('a second-order architecture step takes one batch')
            loss, cost, grads = self.unrolled_grads(arch_batches[0], weight_batch)
        else:
            loss, cost, grads = self.first_order_grads(arch_batches)
        zero_grads(self._all)
        objective = loss if cost is None else loss + cost
        # Under loss scaling an overflowing gradient is the scaler's to skip.
        check_step('architecture', objective,
                   [] if self.precision.scaler_checks_gradients else grads)
        for param, grad in zip(self.arch, grads):
            param.grad = grad
        self.precision.unscale_(self.arch_optimizer)
        if self.grad_clip is not None:
            nn.utils.clip_grad_norm_([p for p in self.arch if p.grad is not None], self.grad_clip)
        self.precision.step(self.arch_optimizer)
        zero_grads(self.arch)
        return float(loss), None if cost is None else float(cost)

    def first_order_grads(self, arch_batches: Sequence[Batch]
                          ) -> tuple[torch.Tensor, torch.Tensor | None, list[torch.Tensor | None]]:
        """``(mean L_val, cost, d (L_val + cost) / d alpha)`` at the current weights, averaged
        over the ranks; no weight gradient is computed."""
        zero_grads(self._all)
        losses, cost = [], None
        with frozen(self.weights):
            for batch in arch_batches:
                loss, cost = backward_loss(self.module, batch, (), self.precision, self.cost,
                                           scale=1.0 / len(arch_batches))
                losses.append(loss)
        grads = _grads(self.arch)
        # Every rank ran the same path, so the same gradients are None on all of them.
        dist.all_reduce_mean_([grad for grad in grads if grad is not None])
        return torch.stack(losses).mean(), cost, grads

    def unrolled_grads(self, arch_batch: Batch, weight_batch: Batch
                       ) -> tuple[torch.Tensor, torch.Tensor | None, list[torch.Tensor | None]]:
        """``(L_val(w'), cost, d (L_val(w'(alpha), alpha) + cost(alpha)) / d alpha)``;
        weights unchanged afterwards."""
        if weight_batch is None:
            raise ValueError('a second-order architecture step needs the weight-half batch')
        saved = [w.detach().clone() for w in self.weights]
        backward_loss(self.forward, weight_batch, self._all)
        virtual, scales = virtual_sgd_step(self.weight_optimizer, self.weights)
        try:
            _assign(self.weights, virtual)
            del virtual
            loss, cost = backward_loss(self.forward, arch_batch, self._all, cost=self.cost)
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
        return loss, cost, arch_grads

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
