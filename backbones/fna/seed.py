"""Seeds: timm MBConv-family classification networks, read as timm defines them.

timm keeps a model's definition only inside its generator function (for
``mobilenetv2_100``, ``_gen_mobilenet_v2``): the block strings it decodes and
the constructor settings it passes on (stem width, activation, norm, SE
layer). :func:`seed_definition` creates the seed once while recording those
two calls, so FNA reads the stages from timm itself instead of keeping a
table per model, and can build any other arch_def with the very same
settings through :meth:`SeedDefinition.build`, the way timm builds its own.
"""
from __future__ import annotations

import copy
import functools
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import timm
import timm.models.efficientnet as timm_efficientnet
import timm.models.mobilenetv3 as timm_mobilenetv3
from timm.models._efficientnet_builder import decode_arch_def
from torch import nn

from nas_tasks.checkpoint import safe_torch_load
from nas_tasks.errors import NasError

from .block_strings import BlockString, expand_stage
from .dilation import dilate_whole_stages

# The timm families whose models are built from block strings, and the
# function each uses to create a model (it handles features_only).
FAMILY_CREATORS = {'efficientnet': (timm_efficientnet, '_create_effnet'),
                   'mobilenetv3': (timm_mobilenetv3, '_create_mnv3')}
# Settings timm passes through to pretrained-weight loading; never part of the architecture.
NOT_ARCHITECTURE = ('pretrained_cfg', 'pretrained_cfg_overlay', 'cache_dir')


@dataclass
class SeedDefinition:
    """A timm seed as its generator defines it.

    ``arch_def``: the stages of block strings, one string per block;
    ``settings``: the constructor settings besides ``block_args``;
    ``family``: 'efficientnet' or 'mobilenetv3' (the model class timm uses).
    """
    name: str
    family: str
    arch_def: list[list[str]]
    settings: dict[str, Any]

    @property
    def stages(self) -> list[list[BlockString]]:
        return [[BlockString.parse(text) for text in stage] for stage in self.arch_def]

    def build(self, arch_def: list[list[str]], pretrained: bool = False, **kwargs) -> nn.Module:
        """A timm model of the seed's family and settings with another arch_def.

        ``kwargs`` are timm's (``features_only``, ``out_indices``,
        ``output_stride``, ``num_classes``, ``pretrained_cfg_overlay`` ...);
        the result is a plain timm ``EfficientNet``/``MobileNetV3`` (or its
        Features class). ``pretrained`` loads only what ``pretrained_cfg_overlay``
        names (a local file): no seed has downloadable weights here. Below
        output stride 32 a dilated stage is dilated in all its blocks, as the
        official FNA code does (:mod:`.dilation`), not from its second block, as timm.
        """
        module, creator = FAMILY_CREATORS[self.family]
        settings = {**self.settings, **kwargs}
        model = getattr(module, creator)(self.name, pretrained=pretrained,
                                         block_args=decode_arch_def(copy.deepcopy(arch_def)),
                                         **settings)
        output_stride = settings.get('output_stride', 32)
        if output_stride < 32:
            dilate_whole_stages(model, arch_def, output_stride)
        return model


@functools.lru_cache(maxsize=None)
def _capture(name: str) -> tuple[str, tuple, dict]:
    calls: dict[str, Any] = {}

    def recording_decode(original):
        def decode(arch_def, *args, **kwargs):
            calls['arch_def'] = copy.deepcopy(arch_def)
            calls['decode_settings'] = (args, kwargs)
            return original(arch_def, *args, **kwargs)
        return decode

    def recording_creator(family, original):
        def create(variant, pretrained=False, **kwargs):
            calls['family'] = family
            calls['settings'] = {k: v for k, v in kwargs.items()
                                 if k != 'block_args' and k not in NOT_ARCHITECTURE}
            return original(variant, pretrained, **kwargs)
        return create

    with ExitStack() as patches:
        for family, (module, creator) in FAMILY_CREATORS.items():
            patches.enter_context(mock.patch.object(
                module, 'decode_arch_def', recording_decode(module.decode_arch_def)))
            patches.enter_context(mock.patch.object(
                module, creator, recording_creator(family, getattr(module, creator))))
        model = timm.create_model(name, pretrained=False)
    if 'family' not in calls or 'arch_def' not in calls:
        raise NasError(f"timm model '{name}' is not built from EfficientNet block strings "
                       '(FNA seeds are MobileNetV2/V3, MnasNet, EfficientNet and the like)')
    block_counts = [len(stage) for stage in model.blocks]
    return calls['family'], (calls['arch_def'], block_counts), calls['settings']


def seed_definition(name: str) -> SeedDefinition:
    """Read the definition of timm model ``name``; one line if FNA cannot use it."""
    if name not in timm.list_models():
        raise NasError(f"unknown timm model '{name}' as FNA seed; supported seeds include "
                       'mobilenetv2_100, mnasnet_100, efficientnet_b0, mobilenetv3_large_100')
    family, (arch_def, block_counts), settings = _capture(name)
    stages = [[block.single() for block in expand_stage(stage)] for stage in arch_def]
    if [len(stage) for stage in stages] != block_counts:
        raise NasError(f"seed '{name}' scales its stage depths (timm built "
                       f'{block_counts} blocks from {[len(s) for s in stages]}); FNA needs a '
                       'seed built at depth multiplier 1.0')
    return SeedDefinition(name, family, stages, dict(settings))


def create_seed(name: str, weights: str | Path | None = None, prefix: str = '') -> nn.Module:
    """The seed network: ``timm.create_model(name, pretrained=False)``, then the
    local ``weights`` file if given (a timm state dict, or an mmengine
    checkpoint whose ``state_dict`` holds the seed's keys under ``prefix``).
    Nothing is downloaded. The classifier is sized from the file."""
    if weights is None:
        return timm.create_model(name, pretrained=False)
    state = safe_torch_load(Path(weights))
    state = state.get('state_dict', state)
    if prefix:
        state = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
        if not state:
            raise NasError(f"seed weights {weights} have no keys starting with '{prefix}'; set "
                           'the seed prefix to the one the file uses')
    classifier = state.get('classifier.weight')
    num_classes = 1000 if classifier is None else int(classifier.shape[0])
    model = timm.create_model(name, pretrained=False, num_classes=num_classes)
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys:
        raise NasError(f"seed weights {weights} do not fit timm '{name}': "
                       f'{len(result.missing_keys)} missing keys (first: {result.missing_keys[0]}); '
                       'is it the right model, or does it need a prefix?')
    return model
