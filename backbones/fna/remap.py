"""FNA's parameter remapping: seed weights into a deeper, wider or differently
shaped network, by the rules of the official code (Fang et al., ICLR 2020,
``tools/apis/param_remap.py``) and FNA++'s generalisations.

Blocks are paired by their place in the networks (a target layer takes the
seed layer at the same index within its stage, or the stage's last beyond
the seed's depth: :func:`stage_pairs`); within a paired block every tensor is
paired by its role, the name timm gives it (``conv_pw.weight``,
``bn1.running_var``, ``se.conv_reduce.bias`` ...). Then per tensor:

* convolution and linear weights (2-D and more): zeros, the first
  ``min(out)`` x ``min(in)`` channels copied from the seed, the kernel
  copied centred (a larger kernel gets the seed's in its centre and zeros
  around it, a smaller one the seed's centre crop). Channels beyond the
  seed's width are zero, or with ``width_noise`` zero plus
  ``width_noise * kaiming_uniform`` (FNA++);
* 1-D tensors (BatchNorm weight, bias and running statistics, biases): the
  target's own initial values with the first ``min(n)`` entries from the seed;
* 0-D tensors (``num_batches_tracked``): the seed's.

A tensor with no seed counterpart keeps its initialisation; the
:class:`RemapReport` lists every tensor and what filled it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from nas_tasks.errors import NasError


@dataclass
class RemapReport:
    """Per target tensor, how it was filled: ``remapped`` maps a target key to
    its seed key and rule; ``kept_init`` lists the keys no seed tensor fills."""
    remapped: dict[str, dict[str, str]] = field(default_factory=dict)
    kept_init: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {'remapped': self.remapped, 'kept_init': self.kept_init,
                'counts': {'remapped': len(self.remapped), 'kept_init': len(self.kept_init)}}


def remap_tensor(seed: torch.Tensor, target: torch.Tensor, width_noise: float = 0.0,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, str]:
    """The remapped value of one tensor (``target`` is its initial value) and the rule used."""
    if seed.dim() != target.dim():
        raise NasError(f'cannot remap a {seed.dim()}-D seed tensor into a {target.dim()}-D one')
    if target.dim() == 0:
        return seed.detach().clone().to(target.dtype), 'copy'
    if target.dim() == 1:
        mapped = target.detach().clone()
        n = min(len(seed), len(target))
        mapped[:n] = seed[:n]
        return mapped, _width_rule(seed.shape, target.shape)
    return _remap_weight(seed, target, width_noise, generator)


def _remap_weight(seed, target, width_noise, generator) -> tuple[torch.Tensor, str]:
    out_n, in_n = min(seed.shape[0], target.shape[0]), min(seed.shape[1], target.shape[1])
    mapped = torch.zeros_like(target)
    if width_noise and (target.shape[0] > seed.shape[0] or target.shape[1] > seed.shape[1]):
        noise = torch.empty_like(target)
        nn.init.kaiming_uniform_(noise, generator=generator)
        mapped = width_noise * noise
        mapped[:out_n, :in_n] = 0  # only channels beyond the seed's width are noisy
    target_slices, seed_slices = [slice(0, out_n), slice(0, in_n)], [slice(0, out_n), slice(0, in_n)]
    for seed_size, target_size in zip(seed.shape[2:], target.shape[2:]):
        size = min(seed_size, target_size)
        target_start, seed_start = (target_size - size) // 2, (seed_size - size) // 2
        target_slices.append(slice(target_start, target_start + size))
        seed_slices.append(slice(seed_start, seed_start + size))
    mapped[tuple(target_slices)] = seed[tuple(seed_slices)].to(target.dtype)
    rules = [_width_rule(seed.shape[:2], target.shape[:2])]
    if seed.shape[2:] != target.shape[2:]:
        grows = all(t >= s for s, t in zip(seed.shape[2:], target.shape[2:]))
        rules.append(f'kernel {_size(seed.shape[2:])}->{_size(target.shape[2:])} '
                     f'({"zero border" if grows else "centre crop"})')
    return mapped, ', '.join(rules)


def _width_rule(seed_shape, target_shape) -> str:
    if tuple(seed_shape) == tuple(target_shape):
        return 'copy'
    return f'width {_size(seed_shape)}->{_size(target_shape)}'


def _size(shape) -> str:
    return 'x'.join(str(n) for n in shape)


def stage_pairs(target_depths: list[int], seed_depths: list[int], target_path, seed_path
                ) -> list[tuple[str, str]]:
    """``(target block, seed block)`` module paths of FNA's depth rule: layer
    ``l`` of stage ``s`` takes seed layer ``min(l, seed_depth - 1)`` of stage ``s``.

    ``target_path(s, l)`` and ``seed_path(s, l)`` name the blocks in each network.
    """
    if len(target_depths) != len(seed_depths):
        raise NasError(f'the target has {len(target_depths)} stages, the seed '
                       f'{len(seed_depths)}; remapping pairs stages one to one')
    return [(target_path(stage, layer), seed_path(stage, min(layer, seed_depth - 1)))
            for stage, (depth, seed_depth) in enumerate(zip(target_depths, seed_depths))
            for layer in range(depth)]


def remap_state(seed: nn.Module, target: nn.Module, block_pairs: list[tuple[str, str]],
                width_noise: float = 0.0, noise_seed: int = 0, exclude: tuple[str, ...] = ()
                ) -> tuple[dict[str, torch.Tensor], RemapReport]:
    """A full state dict for ``target`` remapped from ``seed``, and its report.

    Tensors inside a paired block are paired by role with the seed block's;
    every other tensor with the seed tensor of the same name (the stem, the
    fixed first block, the head). Tensors without a counterpart, or whose
    counterpart has another number of dimensions, keep ``target``'s values.
    Keys starting with an ``exclude`` prefix (architecture logits) are kept
    and left out of the report.
    """
    generator = torch.Generator().manual_seed(noise_seed)
    seed_state = seed.state_dict()
    source_of = {}
    for target_block, seed_block in block_pairs:
        for role in target.get_submodule(target_block).state_dict():
            source_of[f'{target_block}.{role}'] = f'{seed_block}.{role}'
    state, report = {}, RemapReport()
    for key, value in target.state_dict().items():
        if key.startswith(exclude):
            state[key] = value.detach().clone()
            continue
        seed_key = source_of.get(key, key)
        seed_value = seed_state.get(seed_key)
        if seed_value is None or seed_value.dim() != value.dim():
            state[key] = value.detach().clone()
            report.kept_init.append(key)
            continue
        state[key], rule = remap_tensor(seed_value, value, width_noise, generator)
        report.remapped[key] = {'from': seed_key, 'rule': rule}
    return state, report
