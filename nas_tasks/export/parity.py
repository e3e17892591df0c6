"""The two parity checks of an export, each one printed line or one refusal.

* exact: the exported PyTorch model against the search path, same inputs and
  weights: ``torch.equal`` on every output (the same float32 operations in the
  same order give the same bits on one machine);
* close: onnxruntime against the exported PyTorch model, within a tolerance:
  onnxruntime's kernels and graph fusions (a BatchNorm folded into the
  convolution before it, other summation orders) round float32 differently.
  The tolerance is relative to each output's scale, ``ATOL + RTOL * max|torch
  output|`` for every element: a rounding error is a fraction of the values
  it is computed from, not of the (possibly near-zero) element it lands in.
  The toy models differ by 1e-7 to 6e-6 of their scale (docs/export.md);
  1e-4 leaves a margin of 16 times or more and still refuses a real error.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
import torch
from torch import nn

from nas_tasks.errors import NasError

# |onnxruntime - torch| <= ATOL + RTOL * max|torch output|, elementwise (see above).
RTOL = 1e-4
ATOL = 1e-7  # a floor for outputs that are all (near) zero

Outputs = list[tuple[str, torch.Tensor]]


class Parity(NamedTuple):
    """What a check compared and how far apart the two sides were."""
    outputs: int
    elements: int
    max_abs_diff: float
    max_abs_value: float

    def to_json(self) -> dict:
        return dict(self._asdict())


def flatten_outputs(value: Any, name: str = 'output') -> Outputs:
    """The tensors of a nested tuple/list/dict of outputs, named by their position."""
    if isinstance(value, torch.Tensor):
        return [(name, value)]
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        raise NasError(f"the model's tensor forward returned a {type(value).__name__} at {name}; "
                       'only tensors in tuples, lists and dicts can be exported')
    return [pair for key, item in items for pair in flatten_outputs(item, f'{name}_{key}')]


def tensor_outputs(forward: Callable[[nn.Module, torch.Tensor], Any], model: nn.Module,
                   inputs: torch.Tensor) -> Outputs:
    """``forward(model, inputs)`` (the adapter's tensor forward), flattened."""
    with torch.no_grad():
        return flatten_outputs(forward(model, inputs))


def check_exact(reference: Outputs, exported: Outputs, what: str) -> Parity:
    """Every output of ``exported`` bit-equal to ``reference``'s; else a NasError."""
    _check_layout(reference, exported, what)
    parity = _compare(reference, [tensor for _, tensor in exported])
    differing = [name for (name, ref), (_, out) in zip(reference, exported)
                 if not torch.equal(ref, out)]
    if differing:
        raise NasError(f'parity check failed: {what}: {len(differing)} of {len(reference)} outputs '
                       f'differ (first: {differing[0]}), max |diff| {parity.max_abs_diff:.3g}; '
                       'nothing was written')
    return parity


def check_close(expected: Outputs, actual: Sequence[np.ndarray], what: str,
                rtol: float = RTOL, atol: float = ATOL) -> Parity:
    """``actual`` (onnxruntime's arrays) within ``atol + rtol * max|expected|`` of
    ``expected``, output by output."""
    if len(actual) != len(expected):
        raise NasError(f'parity check failed: {what}: {len(actual)} outputs, expected '
                       f'{len(expected)}; nothing was written')
    actual = [torch.from_numpy(np.asarray(array)) for array in actual]
    for (name, ref), out in zip(expected, actual):
        if tuple(ref.shape) != tuple(out.shape):
            raise NasError(f'parity check failed: {what}: {name} has shape {tuple(out.shape)}, '
                           f'expected {tuple(ref.shape)}; nothing was written')
    parity = _compare(expected, actual)
    for (name, ref), out in zip(expected, actual):
        if not ref.numel():
            continue
        tolerance = atol + rtol * float(ref.abs().max())
        diff = float((out.double() - ref.double()).abs().max())
        if not bool(torch.isfinite(out).all()) or diff > tolerance:
            raise NasError(f'parity check failed: {what}: {name} is off by up to {diff:.3g}, '
                           f'more than the tolerance {tolerance:.3g} ({atol:g} + {rtol:g} * its '
                           'largest |value|); nothing was written')
    return parity


def _check_layout(reference: Outputs, exported: Outputs, what: str) -> None:
    shapes = [(name, tuple(tensor.shape)) for name, tensor in reference]
    other = [(name, tuple(tensor.shape)) for name, tensor in exported]
    if shapes != other:
        raise NasError(f'parity check failed: {what}: the outputs differ in number or shape '
                       f'({len(other)} outputs, expected {len(shapes)}); nothing was written')


def _compare(reference: Outputs, other: Sequence[torch.Tensor]) -> Parity:
    diffs = [float((ref.double() - out.double()).abs().max()) if ref.numel() else 0.0
             for (_, ref), out in zip(reference, other)]
    values = [float(ref.abs().max()) if ref.numel() else 0.0 for _, ref in reference]
    return Parity(len(reference), sum(ref.numel() for _, ref in reference),
                  max(diffs, default=0.0), max(values, default=0.0))
