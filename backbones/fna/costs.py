"""Per-candidate cost tables of the FNA super network, and the expected cost.

FNA's architecture loss adds ``weight * log_base(expected cost)``, where the
expected cost is the sum over searchable layers of softmax(alpha)-weighted
candidate costs (``get_flops_list`` in the official code, only the searchable
layers counted). A table holds, per layer, each candidate's cost at the
layer's input size: multiply-adds by torch's FlopCounterMode (the official
MAdds), or latency measured on the current device.

A latency table is timed as the core times DetNAS's
(:func:`nas_tasks.latency.measure_latencies_ms`): every part of the super
network (the stem, each fixed stage, each candidate of each searchable layer)
on the input it gets there, in interleaved passes over all of them, so a part
finds the caches as it would in the network; a candidate is timed as the
adapted network runs it, its BatchNorms on running statistics (the search's
untracked ones compute batch statistics, which put the sums 17-22% over whole
networks, docs/latency.md). The table then times
``check_networks`` sampled adapted networks whole and saves how far the sums
of their parts (the fixed parts' ``fixed_ms`` plus their chosen candidates)
miss them: ``estimate_error``, as a DetNAS latency table does.
"""
from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from backbones.resources import count_multiply_adds
from nas_tasks.differentiable.mixed_op import MixedOp
from nas_tasks.errors import NasError
from nas_tasks.io import atomic_write_json
from nas_tasks.latency import (check_clock, error_check, estimate_error, measure_latencies_ms,
                               measure_latency_ms, measurement_setup)
from nas_tasks.validation import check_int

from .adapted import build_adapted
from .layout import SKIP

COST_METRICS = {'madds': 'G multiply-adds', 'latency': 'ms'}
STEM = 'stem'
# How a latency table is timed unless told otherwise (the core's latency models' defaults).
LATENCY_TIMING = dict(clock='wall', repeats=10, warmup=2, check_networks=5, seed=0)


def network_parts(supernet, input_size: tuple[int, int]) -> Iterator[tuple[str, nn.Module, torch.Tensor]]:
    """``(name, module, its input)`` of every part of the super network in order, on a
    zero image of ``input_size``: ``'stem'``, each fixed stage ``'fixed.<i>'`` and each
    searchable layer's MixedOp ``'stages.<s>.<l>'`` (whose input shape is the same
    whatever is chosen). Call it under ``torch.no_grad()``."""
    x = torch.zeros(1, 3, *input_size, device=next(supernet.parameters()).device)
    stem = nn.Sequential(supernet.conv_stem, supernet.bn1)
    yield STEM, stem, x
    x = stem(x)
    for index in range(len(supernet.fixed) + len(supernet.stages)):
        if str(index) in supernet.fixed:
            block = supernet.fixed[str(index)]
            yield f'fixed.{index}', block, x
            x = block(x)
            continue
        stage = supernet.layout.searchable.index(index)
        for layer, mixed in enumerate(supernet.stages[stage]):
            yield f'stages.{stage}.{layer}', mixed, x
            x = mixed.candidates[0](x)


def layer_inputs(supernet, input_size: tuple[int, int]) -> Iterator[tuple[MixedOp, torch.Tensor]]:
    """Every searchable layer (its MixedOp) with its input, in network order."""
    for _, module, x in network_parts(supernet, input_size):
        if isinstance(module, MixedOp):
            yield module, x


def cost_table(supernet, input_size: tuple[int, int], metric: str = 'madds', **timing) -> dict:
    """The table document of ``supernet``: ``table[layer][op]``, the cost of each op of each
    searchable layer (skip costs 0), and ``provenance`` (how it was measured).

    A latency table (``metric='latency'``) is timed by ``timing`` (clock, repeats,
    warmup, check_networks, seed; defaults :data:`LATENCY_TIMING`) and also holds
    ``fixed_ms``, the parts every network runs, and ``estimate_error``.
    """
    if metric not in COST_METRICS:
        raise NasError(f'cost metric must be one of {sorted(COST_METRICS)}, got {metric!r}')
    unknown = set(timing) - set(LATENCY_TIMING)
    if unknown or (timing and metric != 'latency'):
        raise NasError(f'a {metric} table takes no timing settings {sorted(timing)}; a latency '
                       f'table takes {sorted(LATENCY_TIMING)}')
    input_size = tuple(input_size)
    was_training = supernet.training
    supernet.eval()
    try:
        with torch.no_grad():
            if metric == 'latency':
                return _latency_table(supernet, input_size, **{**LATENCY_TIMING, **timing})
            table = [[0.0 if isinstance(op, nn.Identity) else count_multiply_adds(op, x) / 1e9
                      for op in mixed.candidates] for mixed, x in layer_inputs(supernet, input_size)]
            return dict(provenance=table_provenance(supernet, input_size, metric), table=table)
    finally:
        supernet.train(was_training)


def _latency_table(supernet, input_size, clock, repeats, warmup, check_networks, seed) -> dict:
    device = next(supernet.parameters()).device
    check_clock(clock, device)
    for name, value, minimum in (('repeats', repeats, 1), ('warmup', warmup, 0),
                                 ('check_networks', check_networks, 1)):
        check_int(f'latency table setting {name}', value, minimum)
    # Every part, in network order; a layer's entries are '<layer>/<op>'.
    parts, fixed, layers = [], [], []
    for name, module, x in network_parts(supernet, input_size):
        if not isinstance(module, MixedOp):
            parts.append((name, module, x))
            fixed.append(name)
            continue
        ops = supernet.layout.ops(int(name.rsplit('.', 1)[1]))
        layers.append((name, ops))
        parts += [(f'{name}/{op}', as_deployed(candidate), x)
                  for op, candidate in zip(ops, module.candidates) if op != SKIP]
    entries = measure_latencies_ms(parts, repeats, warmup, clock)
    fixed_ms = {name: entries[name] for name in fixed}
    table = [[0.0 if op == SKIP else entries[f'{name}/{op}'] for op in ops] for name, ops in layers]

    # The sums against whole adapted networks of sampled paths, timed end to end.
    rng = random.Random(seed)
    image = torch.zeros(1, 3, *input_size, device=device)
    checks = []
    for _ in range(check_networks):
        chosen = [rng.randrange(len(ops)) for _, ops in layers]
        arch = dict(seed=supernet.definition.name, arch_def=supernet.layout.arch_def(
            _by_stage([ops[index] for (_, ops), index in zip(layers, chosen)], supernet.layout.depths)))
        network = build_adapted(arch, features_only=True, output_stride=supernet.output_stride)
        estimated = sum(fixed_ms.values()) + sum(row[index] for row, index in zip(table, chosen))
        measured = measure_latency_ms(network.to(device).eval(), image, repeats, warmup, clock)
        checks.append(error_check(arch, estimated, measured))
    provenance = table_provenance(supernet, input_size, 'latency', clock=clock, repeats=repeats,
                                  warmup=warmup)
    return dict(provenance=provenance, table=table, fixed_ms=fixed_ms,
                estimate_error=estimate_error(checks))


def as_deployed(op: nn.Module) -> nn.Module:
    """A copy of a searchable op, in eval mode, whose untracked BatchNorms
    (``searchable_norm='untracked'``) use running statistics, as the adapted
    network's do, instead of computing each batch's."""
    op = copy.deepcopy(op).eval()
    for norm in op.modules():
        if isinstance(norm, nn.modules.batchnorm._BatchNorm) and not norm.track_running_stats:
            device = next(op.parameters()).device
            norm.track_running_stats = True
            norm.register_buffer('running_mean', torch.zeros(norm.num_features, device=device))
            norm.register_buffer('running_var', torch.ones(norm.num_features, device=device))
    return op


def _by_stage(ops: list[str], depths: list[int]) -> list[list[str]]:
    stages, start = [], 0
    for depth in depths:
        stages.append(ops[start:start + depth])
        start += depth
    return stages


def table_provenance(supernet, input_size, metric: str, **how) -> dict:
    """How a table was measured (``how``: a latency table's timing): a latency table is
    only valid on the same setup."""
    device = next(supernet.parameters()).device
    return dict(metric=metric, unit=COST_METRICS[metric],
                **measurement_setup(device, batch=1, input_size=input_size, **how),
                seed=supernet.definition.name, depths=supernet.layout.depths)


def expected_cost(supernet, table: list[list[float]]) -> torch.Tensor:
    """Sum over layers of softmax(alpha) . costs: differentiable in alpha."""
    weights = supernet.arch_weights()
    total = 0.0
    for (group, row), costs in zip(supernet.layer_rows(), table):
        probs = weights[group][row]
        total = total + (probs * torch.tensor(costs, dtype=probs.dtype, device=probs.device)).sum()
    return total


def save_table(path, document: dict) -> None:
    atomic_write_json(path, document)


def load_table(path, supernet, metric: str) -> dict:
    """A table document written by :func:`save_table`, checked against ``supernet``'s layers."""
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
    return document
