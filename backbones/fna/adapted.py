"""The adapted network: a plain timm model built from a seed and a timm arch_def.

An FNA architecture is ``{"seed": <timm model>, "arch_def": [[block strings]]}``
(space ``fna`` v1). timm's own EfficientNet builder builds it with the seed's
settings, so it is an ``EfficientNet`` or ``MobileNetV3`` that timm users load,
export and benchmark as any other; ``features_only=True`` gives the dense
tasks' feature pyramid. It is registered with timm:

    timm.create_model('fna_adapted', arch='work_dirs/x/best_arch.json', num_classes=0,
                      pretrained=True, pretrained_cfg_overlay=dict(file='.../adapted_weights.pth'))
    timm.create_model('fna_retinanet_mobilenetv2', features_only=True)   # a published one

and as ``FNABackbone`` in mmdet's and mmseg's MODELS.
"""
from __future__ import annotations

from pathlib import Path

import timm
import torch
from mmdet.registry import MODELS as MMDET_MODELS
from mmseg.registry import MODELS as MMSEG_MODELS
from timm.models import register_model
from timm.models._efficientnet_builder import decode_arch_def
from torch import nn

from nas_tasks.architectures import register_arch, resolve_arch
from nas_tasks.checkpoint import safe_torch_load
from nas_tasks.errors import ArchError, NasError
from nas_tasks.space import ArchSpace

from .layout import searchable_stages
from .remap import RemapReport, remap_state, stage_pairs
from .seed import create_seed, seed_definition

SPACE_NAME, SPACE_VERSION = 'fna', 1


class FNASpace(ArchSpace):
    """Adapted architectures: a timm seed and the arch_def that replaces its own.

    The first stage and the fixed tail must be the seed's; the searchable
    stages may hold any inverted-residual blocks timm can decode.
    """

    name, version = SPACE_NAME, SPACE_VERSION

    def validate(self, arch) -> None:
        if not isinstance(arch, dict) or set(arch) != {'seed', 'arch_def'}:
            raise ArchError("an FNA arch is dict(seed='<timm model>', arch_def=[[block strings]])"
                            f', got {arch!r:.200}')
        try:
            definition = seed_definition(arch['seed'])
        except NasError as error:
            raise ArchError(str(error)) from error
        arch_def = arch['arch_def']
        if (not isinstance(arch_def, list) or not arch_def
                or not all(isinstance(stage, list) and stage and all(isinstance(b, str) for b in stage)
                           for stage in arch_def)):
            raise ArchError('arch_def must be a list of non-empty lists of timm block strings')
        if len(arch_def) != len(definition.arch_def):
            raise ArchError(f"arch_def has {len(arch_def)} stages, seed {arch['seed']} has "
                            f'{len(definition.arch_def)}')
        searchable = searchable_stages(definition)
        for index, stage in enumerate(arch_def):
            if index not in searchable and stage != definition.arch_def[index]:
                raise ArchError(f"arch_def stage {index} must be the seed's {definition.arch_def[index]}"
                                f' (it is not searched), got {stage}')
        try:
            decode_arch_def(arch_def)
        except (AssertionError, ValueError, KeyError, IndexError) as error:
            raise ArchError(f'timm cannot decode arch_def: {error}') from error


FNA_SPACE = FNASpace()


def resolve_fna_arch(arch) -> dict:
    return resolve_arch(arch, FNA_SPACE)


def build_adapted(arch, pretrained: bool = False, **timm_kwargs) -> nn.Module:
    """The adapted timm model of ``arch`` (a preset name, a JSON path or a dict)."""
    arch = resolve_fna_arch(arch)
    return seed_definition(arch['seed']).build(arch['arch_def'], pretrained=pretrained,
                                               **timm_kwargs)


@register_model
def fna_adapted(pretrained: bool = False, arch=None, **kwargs) -> nn.Module:
    """timm entry point of any adapted network: ``arch=`` names it."""
    if arch is None:
        raise NasError("fna_adapted needs arch=: a published FNA architecture's name, a "
                       'best_arch.json path or an arch dict')
    return build_adapted(arch, pretrained=pretrained, **kwargs)


def remap_into_adapted(arch, seed: dict, width_noise: float = 0.0
                       ) -> tuple[dict[str, torch.Tensor], RemapReport]:
    """Seed weights remapped into the adapted network (``num_classes=0``), as
    FNA's parameter adaptation starts: from the seed, not from the super network.

    ``seed`` is ``dict(name=..., weights=PATH, prefix='')``.
    """
    arch = resolve_fna_arch(arch)
    if seed['name'] != arch['seed']:
        raise NasError(f"the architecture was adapted from seed {arch['seed']}, not "
                       f"{seed['name']}; remap from the seed it names")
    definition = seed_definition(arch['seed'])
    target = definition.build(arch['arch_def'], num_classes=0)
    seed_model = create_seed(seed['name'], seed.get('weights'), seed.get('prefix', ''))
    searchable = searchable_stages(definition)
    pairs = stage_pairs([len(arch['arch_def'][i]) for i in searchable],
                        [len(definition.arch_def[i]) for i in searchable],
                        lambda s, l: f'blocks.{searchable[s]}.{l}',
                        lambda s, l: f'blocks.{searchable[s]}.{l}')
    return remap_state(seed_model, target, pairs, width_noise)


class FNABackbone(nn.Module):
    """An adapted network as a dense-task backbone: timm's ``features_only`` model.

    Args:
        arch: a published name, a ``best_arch.json`` path or an arch dict.
        out_indices, output_stride: timm's (1,2,3,4 are strides 4..32;
            output_stride 16 dilates the stride-32 stage, all its blocks, as
            the official FNA DeepLabv3 does: :mod:`.dilation`).
        weights: a file of the adapted network's weights (the search's
            ``adapted_weights.pth``), loaded in :meth:`init_weights`.
        seed: instead of ``weights``, ``dict(name, weights, prefix)``: remap
            the seed into the network in :meth:`init_weights`.
        width_noise: FNA++'s noise for channels beyond the seed's width.

    ``out_channels`` and ``strides`` are timm's ``feature_info``.
    """

    def __init__(self, arch, out_indices=(1, 2, 3, 4), output_stride: int = 32,
                 weights: str | None = None, seed: dict | None = None, width_noise: float = 0.0):
        super().__init__()
        if weights is not None and seed is not None:
            raise NasError('FNABackbone takes weights= (adapted weights) or seed= (remap from '
                           'the seed), not both')
        self.arch = resolve_fna_arch(arch)
        self.weights, self.seed, self.width_noise = weights, seed, width_noise
        self.model = build_adapted(self.arch, features_only=True, out_indices=tuple(out_indices),
                                   output_stride=output_stride)
        self.out_channels = self.model.feature_info.channels()
        self.strides = self.model.feature_info.reduction()
        self.remap_report: RemapReport | None = None

    def init_weights(self) -> None:
        if self.weights is not None:
            self.load_adapted_weights(self.weights)
        elif self.seed is not None:
            state, self.remap_report = remap_into_adapted(self.arch, self.seed, self.width_noise)
            self._load(state, 'the remapped seed')

    def load_adapted_weights(self, path: str | Path) -> None:
        self._load(safe_torch_load(Path(path)), str(path))

    def _load(self, state: dict, source: str) -> None:
        # A features_only model holds a subset of the full network's keys (no head).
        own = self.model.state_dict()
        missing = [key for key in own if key not in state]
        if missing:
            raise NasError(f'{source} does not fit the adapted network: {len(missing)} missing '
                           f'keys (first: {missing[0]}); was it written for this arch?')
        self.model.load_state_dict({key: state[key] for key in own})

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.model(x))


MMDET_MODELS.register_module(module=FNABackbone)
MMSEG_MODELS.register_module(module=FNABackbone)


# -- published adapted networks (Fang et al., ICLR 2020, official JaminFong/FNA configs:
# the searched net_config of each, with skips removed, as timm block strings) ----------
PUBLISHED = {
    'fna_retinanet_mobilenetv2': (
        'RetinaNet backbone adapted from MobileNetV2 (33.9 COCO mAP in the paper)',
        'configs/fna_retinanet_fpn_retrain.py',
        [['ir_r1_k3_s2_e6_c24', 'ir_r1_k3_s1_e6_c24'],
         ['ir_r1_k7_s2_e6_c32', 'ir_r1_k5_s1_e6_c32'],
         ['ir_r1_k3_s2_e6_c64', 'ir_r1_k5_s1_e6_c64', 'ir_r1_k7_s1_e6_c64', 'ir_r1_k3_s1_e6_c64'],
         ['ir_r1_k5_s1_e6_c96', 'ir_r1_k7_s1_e6_c96'],
         ['ir_r1_k7_s2_e6_c160', 'ir_r1_k7_s1_e6_c160', 'ir_r1_k7_s1_e3_c160',
          'ir_r1_k7_s1_e6_c160'],
         ['ir_r1_k7_s1_e6_c320']]),
    'fna_ssdlite_mobilenetv2': (
        'SSDLite backbone adapted from MobileNetV2 (23.3 COCO mAP in the paper)',
        'configs/fna_ssdlite_retrain.py',
        [['ir_r1_k5_s2_e6_c24'],
         ['ir_r1_k5_s2_e6_c32', 'ir_r1_k5_s1_e6_c32', 'ir_r1_k3_s1_e6_c32', 'ir_r1_k5_s1_e6_c32'],
         ['ir_r1_k5_s2_e6_c64', 'ir_r1_k7_s1_e6_c64', 'ir_r1_k3_s1_e6_c64'],
         ['ir_r1_k7_s1_e6_c96'] * 4,
         ['ir_r1_k5_s2_e6_c160', 'ir_r1_k7_s1_e6_c160', 'ir_r1_k7_s1_e6_c160'],
         ['ir_r1_k7_s1_e6_c320']]),
    'fna_deeplabv3_mobilenetv2': (
        'DeepLabv3 backbone adapted from MobileNetV2 (76.6 Cityscapes val mIoU in the paper)',
        'fna_seg/model/deeplab/cityscapes.deeplabv3/config.py',
        [['ir_r1_k3_s2_e6_c24', 'ir_r1_k3_s1_e6_c24'],
         ['ir_r1_k7_s2_e6_c32', 'ir_r1_k3_s1_e6_c32', 'ir_r1_k3_s1_e6_c32', 'ir_r1_k3_s1_e6_c32'],
         ['ir_r1_k7_s2_e6_c64', 'ir_r1_k7_s1_e6_c64', 'ir_r1_k5_s1_e6_c64', 'ir_r1_k7_s1_e6_c64',
          'ir_r1_k7_s1_e6_c64', 'ir_r1_k5_s1_e6_c64'],
         ['ir_r1_k7_s1_e6_c96'] * 4,
         ['ir_r1_k7_s2_e6_c160', 'ir_r1_k5_s1_e6_c160'],
         ['ir_r1_k7_s1_e3_c320']]),
}
MOBILENETV2_FIXED_FIRST = ['ds_r1_k3_s1_c16']


def _publish(name: str, description: str, source: str, searched: list[list[str]]) -> None:
    arch = dict(seed='mobilenetv2_100', arch_def=[MOBILENETV2_FIXED_FIRST] + searched)
    register_arch(name, SPACE_NAME, SPACE_VERSION, arch, description=description,
                  source=f'github.com/JaminFong/FNA {source}')

    def entry(pretrained: bool = False, **kwargs) -> nn.Module:
        return build_adapted(name, pretrained=pretrained, **kwargs)
    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = description
    if name not in timm.list_models(name):
        register_model(entry)


for _name, (_description, _source, _searched) in PUBLISHED.items():
    _publish(_name, _description, _source, _searched)
