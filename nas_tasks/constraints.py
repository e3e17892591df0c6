"""Resource limits that candidate architectures must meet (FLOPs, params, ...)."""
from __future__ import annotations

from typing import Callable

from .errors import NasError
from .space import Arch

_BOUNDS = ('min', 'max')


class ResourceConstraint:
    """Accepts an architecture when every limited cost lies within its bounds.

    Args:
        cost_fn: arch -> costs, e.g. ``{'flops': 2.1e8, 'params': 3.4e6}``.
        limits: cost name -> ``{'min': ..., 'max': ...}`` (either bound may be
            left out; both are inclusive), e.g.
            ``{'flops': {'min': 1e8, 'max': 3e8}, 'params': {'max': 5e6}}``.
            ``None`` or ``{}`` accepts everything without calling ``cost_fn``.
    """

    def __init__(self, cost_fn: Callable[[Arch], dict[str, float]], limits: dict[str, dict] | None = None):
        self.cost_fn = cost_fn
        self.limits = _check_limits(limits or {})

    def __call__(self, arch: Arch) -> bool:
        return not self.violations(arch)

    def violations(self, arch: Arch) -> list[str]:
        """One line per broken limit, e.g. ``'flops 4.1e+08 > max 3e+08'``."""
        if not self.limits:
            return []
        costs = self.cost_fn(arch)
        broken = []
        for name, bounds in self.limits.items():
            if name not in costs:
                raise NasError(f"resource limits name '{name}', but the cost function gives only: "
                               f"{', '.join(costs) or 'nothing'}; a cost model in search.cost_models "
                               f"can give it (e.g. a latency model, docs/latency.md)")
            value = float(costs[name])
            if 'min' in bounds and value < bounds['min']:
                broken.append(f"{name} {value:g} < min {bounds['min']:g}")
            if 'max' in bounds and value > bounds['max']:
                broken.append(f"{name} {value:g} > max {bounds['max']:g}")
        return broken

    def __str__(self) -> str:
        return ', '.join(
            f"{name} in [{bounds.get('min', float('-inf')):g}, {bounds.get('max', float('inf')):g}]"
            for name, bounds in self.limits.items()) or 'no limits'

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self})'


def combined_costs(*cost_fns: Callable[[Arch], dict[str, float]]) -> Callable[[Arch], dict[str, float]]:
    """One cost function giving the costs of all ``cost_fns`` (the estimator's
    and the search's cost models'); two that give the same cost are an error."""
    def costs(arch: Arch) -> dict[str, float]:
        merged: dict[str, float] = {}
        for cost_fn in cost_fns:
            for name, value in cost_fn(arch).items():
                if name in merged:
                    raise NasError(f"two cost functions give '{name}'; keep one of them "
                                   '(the estimator and search.cost_models give costs)')
                merged[name] = value
        return merged
    return costs


def _check_limits(limits: dict) -> dict[str, dict[str, float]]:
    if not isinstance(limits, dict):
        raise NasError(f"resource limits must be a dict like {{'flops': {{'max': 3e8}}}}, got {limits!r}")
    checked = {}
    for name, bounds in limits.items():
        if not isinstance(bounds, dict) or not bounds:
            raise NasError(f"limit for '{name}' must be a dict with 'min' and/or 'max', got {bounds!r}")
        unknown = [key for key in bounds if key not in _BOUNDS]
        if unknown:
            raise NasError(f"limit for '{name}' has unknown field(s) {', '.join(map(repr, unknown))}; "
                           "only 'min' and 'max' are allowed")
        for key, value in bounds.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise NasError(f"limit '{name}.{key}' must be a number, got {value!r}")
        if 'min' in bounds and 'max' in bounds and bounds['min'] > bounds['max']:
            raise NasError(f"limit for '{name}' has min {bounds['min']:g} above max {bounds['max']:g}")
        checked[name] = {key: float(value) for key, value in bounds.items()}
    return checked


def sample_within(space, rng, constraint: Callable[[Arch], bool] | None,
                  max_tries: int = 1000) -> Arch:
    """A uniform sample of ``space`` that satisfies ``constraint`` (rejection sampling).

    Unlike a strategy's sampling, repeats are allowed: this draws the paths a
    supernet trains on.
    """
    for _ in range(max_tries):
        arch = space.sample(rng)
        if constraint is None or constraint(arch):
            return arch
    raise NasError(f'no architecture within the limits ({constraint}) after {max_tries} '
                   'samples; loosen the limits')
