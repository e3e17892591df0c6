"""DetNAS backbones (Chen et al., 2019), registered in ``mmdet.registry.MODELS``.

* :class:`DetNASSuperNet` holds all four block choices in every layer and runs
  the path picked by :meth:`DetNASSuperNet.set_arch` (all 'shuffle3x3' until
  then).
* :class:`DetNASBackbone` is one fixed architecture as a plain network. Its
  parameter names are the supernet's with ``choices.{c}.`` dropped, so
  :func:`subnet_state_dict` turns supernet weights into backbone weights.

Both return the outputs of the stages in ``out_indices`` (strides 4, 8, 16,
32) and support ``frozen_stages`` / ``norm_eval`` / ``norm_cfg`` like mmdet's
ResNet: ``norm_cfg=dict(type='SyncBN')`` gives the official search's
synchronised BN on GPUs (on one process it is plain BN). Weights
are initialised at construction like the official code (see
:func:`init_weights_like_detnas`); an ``init_cfg`` (e.g. Pretrained) is
applied on top by ``init_weights()``.
"""
import os
import re
from collections import OrderedDict
from typing import Callable, Mapping, Sequence

import torch
from mmcv.cnn import build_norm_layer
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from mmengine.registry import MODELS as ENGINE_MODELS
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from nas_tasks.errors import NasError

from .detnas_presets import (PRESETS, SPACE_VERSION, VARIANTS, LayerSpec, arch_to_choices,
                             check_variant, choices_to_arch, layer_keys, layer_specs,
                             resolve_detnas_arch, space_name, stage_last_layers)
from .shufflenet_blocks import (CHOICE_NAMES, ChoiceBlock, ShuffleNetV2Block, build_stem,
                                init_weights_like_detnas)

__all__ = [
    'CHOICE_NAMES', 'VARIANTS', 'PRESETS', 'SPACE_VERSION', 'space_name', 'layer_keys',
    'arch_to_choices', 'choices_to_arch', 'resolve_detnas_arch', 'DetNASSuperNet', 'DetNASBackbone',
    'subnet_state_dict', 'extract_subnet_state_dict',
]

NUM_STAGES = 4
DEFAULT_NORM_CFG = dict(type='BN', requires_grad=True)


def norm_layer_from_cfg(norm_cfg: Mapping) -> Callable[[int], nn.Module]:
    """``num_features -> layer`` built by mmcv's ``build_norm_layer`` (BN, SyncBN, GN, ...)."""
    norm_cfg = dict(norm_cfg)
    if ENGINE_MODELS.get(norm_cfg.get('type')) is None:  # mmcv's own message names None
        raise NasError(f"norm_cfg type {norm_cfg.get('type')!r} is not a normalisation layer "
                       "that mmcv knows; use e.g. dict(type='BN') or dict(type='SyncBN')")
    return lambda num_features: build_norm_layer(norm_cfg, num_features)[1]


class _DetNASNet(BaseModule):
    """Stem + a flat ``layers`` list of choice blocks grouped into four stages.

    ``build_layer(index, spec, norm_layer)`` makes layer ``index``; it is the
    only thing that differs between the supernet and a standalone backbone.
    """

    def __init__(self, variant: str, build_layer: Callable[..., nn.Module],
                 out_indices: Sequence[int], frozen_stages: int, norm_eval: bool,
                 norm_cfg: Mapping | None, init_cfg: dict | list | None):
        super().__init__(init_cfg)
        if not set(out_indices) <= set(range(NUM_STAGES)) or not out_indices:
            raise NasError(f'out_indices must be a non-empty subset of 0..{NUM_STAGES - 1}, '
                           f'got {tuple(out_indices)}')
        if not -1 <= frozen_stages <= NUM_STAGES:
            raise NasError(f'frozen_stages must be in -1..{NUM_STAGES}, got {frozen_stages}')
        check_variant(variant)
        self.variant = variant
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.norm_cfg = dict(norm_cfg or DEFAULT_NORM_CFG)
        norm_layer = norm_layer_from_cfg(self.norm_cfg)
        self.stem = build_stem(VARIANTS[variant]['first_channels'], norm_layer)
        self.layers = nn.ModuleList(
            build_layer(index, spec, norm_layer) for index, spec in enumerate(layer_specs(variant)))
        self._stage_last_layers = stage_last_layers(variant)
        self._output_layers = {self._stage_last_layers[stage] for stage in self.out_indices}
        init_weights_like_detnas(self)
        self._freeze_stages()

    @property
    def out_channels(self) -> tuple[int, ...]:
        widths = VARIANTS[self.variant]['widths']
        return tuple(widths[stage] for stage in sorted(self.out_indices))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.stem(x)
        outs = []
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index in self._output_layers:
                outs.append(x)
        return tuple(outs)

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        num_frozen_layers = (self._stage_last_layers[self.frozen_stages - 1] + 1
                             if self.frozen_stages > 0 else 0)
        for module in [self.stem, *self.layers[:num_frozen_layers]]:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False


@MODELS.register_module()
class DetNASSuperNet(_DetNASNet):
    """The DetNAS one-shot supernet; ``set_arch`` picks the path ``forward`` runs.

    ``norm_cfg`` is mmcv's (``dict(type='BN')`` by default). The official
    search trains the supernet with ``dict(type='SyncBN')`` at 2 images per
    GPU; candidates are still BN-recalibrated per process
    (:func:`nas_tasks.estimators.bn_recalibration.recalibrate_batch_norm`).
    """

    def __init__(self, variant: str = 'small', out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1, norm_eval: bool = False, norm_cfg: dict | None = None,
                 init_cfg: dict | list | None = None):
        super().__init__(variant, lambda index, spec, norm: ChoiceBlock(*spec, norm_layer=norm),
                         out_indices, frozen_stages, norm_eval, norm_cfg, init_cfg)

    def set_arch(self, arch: Mapping[str, str]) -> None:
        for layer, choice in zip(self.layers, arch_to_choices(arch, self.variant)):
            layer.select(choice)

    @property
    def arch(self) -> dict[str, str]:
        return choices_to_arch([layer.chosen_name for layer in self.layers], self.variant)

    def subnet_state_dict(self, arch: Mapping[str, str]) -> OrderedDict:
        """Weights of the :class:`DetNASBackbone` for ``arch`` (what a search exports)."""
        return extract_subnet_state_dict(self, arch)


@MODELS.register_module()
class DetNASBackbone(_DetNASNet):
    """One DetNAS architecture as a standalone backbone.

    Args:
        arch: a preset name (see ``PRESETS``), a path to an arch JSON file, an
            arch document dict, or an arch dict ``{"layer00": "shuffle7x7", ...}``
            (resolved by :func:`nas_tasks.architectures.resolve_arch`).
        variant: 'small', 'large' or 'xlarge'; inferred from a preset or
            document, required for a bare arch dict.
        norm_cfg: mmcv's normalisation config, as for the supernet
            (``dict(type='BN')`` by default, ``dict(type='SyncBN')`` on GPUs).
    """

    def __init__(self, arch: str | os.PathLike | Mapping[str, str], variant: str | None = None,
                 out_indices: Sequence[int] = (0, 1, 2, 3), frozen_stages: int = -1,
                 norm_eval: bool = False, norm_cfg: dict | None = None,
                 init_cfg: dict | list | None = None):
        variant, arch = resolve_detnas_arch(arch, variant)
        choices = arch_to_choices(arch, variant)
        super().__init__(
            variant, lambda index, spec, norm: ShuffleNetV2Block(choices[index], *spec, norm_layer=norm),
            out_indices, frozen_stages, norm_eval, norm_cfg, init_cfg)
        self.arch = arch


# layers.{i}.choices.{c}.<rest>, optionally behind a prefix such as 'backbone.'
_CHOICE_KEY = re.compile(r'^(?P<layer_prefix>(?:.*\.)?layers\.(?P<layer>\d+)\.)'
                         r'choices\.(?P<choice>\d+)\.(?P<rest>.+)$')


def subnet_state_dict(supernet_state_dict: Mapping[str, torch.Tensor],
                      arch: Mapping[str, str], variant: str) -> OrderedDict:
    """Supernet weights -> :class:`DetNASBackbone` weights for ``arch``.

    Keeps the chosen candidate of every layer (``layers.{i}.choices.{c}.x`` ->
    ``layers.{i}.x``), drops the others and keeps every other key unchanged,
    so a detector's state dict (``backbone.layers...``) works too.
    """
    chosen = [CHOICE_NAMES.index(choice) for choice in arch_to_choices(arch, variant)]
    subnet = OrderedDict()
    for key, value in supernet_state_dict.items():
        match = _CHOICE_KEY.match(key)
        if match is None:
            subnet[key] = value
            continue
        layer = int(match['layer'])
        if layer >= len(chosen):
            raise NasError(f'state dict key {key!r} is for layer {layer}, but '
                           f'{space_name(variant)} has {len(chosen)} layers')
        if int(match['choice']) == chosen[layer]:
            subnet[match['layer_prefix'] + match['rest']] = value
    return subnet


def extract_subnet_state_dict(supernet: DetNASSuperNet, arch: Mapping[str, str]) -> OrderedDict:
    """The state dict of the :class:`DetNASBackbone` for ``arch`` inside ``supernet``."""
    return subnet_state_dict(supernet.state_dict(), arch, supernet.variant)
