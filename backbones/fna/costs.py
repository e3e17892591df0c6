"""Per-candidate cost tables of the FNA super network, and the expected cost.

FNA's architecture loss adds ``weight * log_base(expected cost)``, where the
expected cost is the sum over searchable layers of softmax(alpha)-weighted
candidate costs (``get_flops_list`` in the official code, only the searchable
layers counted). A table holds, per layer, each candidate's cost at the
layer's input size: multiply-adds by torch's FlopCounterMode (the official
MAdds), or latency measured on the current device.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from backbones.resources import count_multiply_adds
from nas_tasks.errors import NasError
from nas_tasks.io import atomic_write_json
from nas_tasks.latency import measure_latency_ms, measurement_setup

COST_METRICS = {'madds': 'G multiply-adds', 'latency': 'ms'}


def layer_inputs(supernet, input_size: tuple[int, int]) -> Iterator[tuple[nn.Module, torch.Tensor]]:
    """Every searchable layer (its MixedOp) with its input, on a zero image of
    ``input_size``; each layer's input shape is the same whatever is chosen."""
    x = torch.zeros(1, 3, *input_size, device=next(supernet.parameters()).device)
    x = supernet.bn1(supernet.conv_stem(x))
    for index in range(len(supernet.fixed) + len(supernet.stages)):
        if str(index) in supernet.fixed:
            x = supernet.fixed[str(index)](x)
            continue
        for mixed in supernet.stages[supernet.layout.searchable.index(index)]:
            yield mixed, x
            x = mixed.candidates[0](x)


def cost_table(supernet, input_size: tuple[int, int], metric: str = 'madds') -> list[list[float]]:
    """``table[layer][op]``, the cost of each op of each searchable layer (skip costs 0)."""
    if metric not in COST_METRICS:
        raise NasError(f'cost metric must be one of {sorted(COST_METRICS)}, got {metric!r}')
    was_training = supernet.training
    table = []
    with torch.no_grad():
        for mixed, x in layer_inputs(supernet.eval(), tuple(input_size)):
            row = []
            for op in mixed.candidates:
                if isinstance(op, nn.Identity):
                    row.append(0.0)
                elif metric == 'madds':
                    row.append(count_multiply_adds(op, x) / 1e9)
                else:
                    row.append(measure_latency_ms(op, x))
            table.append(row)
    supernet.train(was_training)
    return table


def table_provenance(supernet, input_size, metric: str) -> dict:
    """How a table was measured: a latency table is only valid on the same setup."""
    device = next(supernet.parameters()).device
    return dict(metric=metric, unit=COST_METRICS[metric],
                **measurement_setup(device, batch=1, input_size=input_size),
                seed=supernet.definition.name, depths=supernet.layout.depths)


def expected_cost(supernet, table: list[list[float]]) -> torch.Tensor:
    """Sum over layers of softmax(alpha) . costs: differentiable in alpha."""
    weights = supernet.arch_weights()
    total = 0.0
    for (group, row), costs in zip(supernet.layer_rows(), table):
        probs = weights[group][row]
        total = total + (probs * torch.tensor(costs, dtype=probs.dtype, device=probs.device)).sum()
    return total


def save_table(path, table: list[list[float]], provenance: dict) -> None:
    atomic_write_json(path, dict(provenance=provenance, table=table))


def load_table(path, supernet, metric: str) -> list[list[float]]:
    """A table file written by :func:`save_table`, checked against ``supernet``'s layers."""
    try:
        document = json.loads(Path(path).read_text())
        table, provenance = document['table'], document['provenance']
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise NasError(f'cannot read cost table {path}: {error}') from error
    if provenance.get('metric') != metric:
        raise NasError(f"cost table {path} holds {provenance.get('metric')!r}, the search's cost "
                       f"metric is {metric!r}; measure a {metric} table or change cost.metric")
    expected = [len(supernet.layout.ops(layer)) for depth in supernet.layout.depths
                for layer in range(depth)]
    if [len(row) for row in table] != expected:
        raise NasError(f'cost table {path} was measured for another super network (its layers '
                       f'have {[len(row) for row in table]} ops, this one {expected}); measure it '
                       'again for this config')
    return table
