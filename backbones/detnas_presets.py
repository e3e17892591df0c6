"""DetNAS variants, published architectures and the architecture format.

An architecture is a dict ``{"layer00": "shuffle7x7", "layer01": ..., ...}``
with one key per choice block (20 for 'small', 40 for 'large'/'xlarge'). Arch
files are JSON ``{"space": "detnas-small", "version": 1, "arch": {...},
"metrics": {...}}``, checked against :class:`DetNASSpace`; the published
architectures are registered with :func:`nas_tasks.architectures.register_arch`
and resolved by :func:`resolve_detnas_arch`. Plain Python: needs neither torch
nor mmdet.
"""
import functools
import os
from typing import Mapping, NamedTuple, Sequence

from nas_tasks.architectures import is_arch_document, register_arch, resolve_arch_among
from nas_tasks.errors import ArchError, NasError
from nas_tasks.registry import SPACES
from nas_tasks.space import CategoricalSpace

from .shufflenet_blocks import CHOICE_NAMES

SPACE_VERSION = 1

VARIANTS = {
    'small': dict(first_channels=16, widths=(64, 160, 320, 640), depths=(4, 4, 8, 4)),
    'large': dict(first_channels=48, widths=(96, 240, 480, 960), depths=(8, 8, 16, 8)),
    'xlarge': dict(first_channels=72, widths=(172, 432, 864, 1728), depths=(8, 8, 16, 8)),
}

# Choice indices per block as published with the official DetNAS code
# (https://github.com/megvii-model/DetNAS): name -> (variant, what, indices).
_PUBLISHED_INDICES = {
    'detnas_300m_coco_fpn': (
        'small', 'searched on COCO with FPN (300M FLOPs)',
        [2, 1, 2, 0, 2, 1, 1, 2, 3, 3, 1, 3, 0, 0, 3, 1, 3, 1, 3, 2]),
    'detnas_300m_coco_retinanet': (
        'small', 'searched on COCO with RetinaNet (300M FLOPs)',
        [2, 3, 1, 1, 3, 2, 1, 3, 3, 1, 1, 1, 3, 3, 2, 0, 3, 3, 3, 3]),
    'detnas_300m_voc_fpn': (
        'small', 'searched on VOC with FPN (300M FLOPs)',
        [2, 1, 0, 3, 1, 3, 0, 3, 2, 0, 1, 1, 3, 3, 3, 3, 3, 3, 3, 1]),
    'detnas_300m_voc_retinanet': (
        'small', 'searched on VOC with RetinaNet (300M FLOPs)',
        [1, 3, 0, 0, 2, 3, 3, 3, 2, 3, 3, 3, 3, 2, 2, 0, 2, 3, 1, 1]),
    'detnas_1.3g_coco_fpn': (
        'large', 'searched on COCO with FPN (1.3G FLOPs)',
        [0, 0, 3, 1, 2, 1, 0, 2, 0, 3, 1, 2, 3, 3, 2, 0, 2, 1, 1, 3,
         2, 0, 2, 2, 2, 1, 3, 1, 0, 3, 3, 3, 1, 3, 3, 3, 3, 3, 3, 3]),
}
# name -> dict(variant=..., arch=tuple of choice names, one per layer)
PRESETS = {
    name: dict(variant=variant, arch=tuple(CHOICE_NAMES[i] for i in indices))
    for name, (variant, _, indices) in _PUBLISHED_INDICES.items()
}


class LayerSpec(NamedTuple):
    in_channels: int
    out_channels: int
    stride: int


def check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise NasError(f'unknown DetNAS variant {variant!r}; expected one of {", ".join(VARIANTS)}')


def space_name(variant: str) -> str:
    check_variant(variant)
    return f'detnas-{variant}'


def layer_keys(variant: str) -> list[str]:
    check_variant(variant)
    return [f'layer{i:02d}' for i in range(sum(VARIANTS[variant]['depths']))]


def layer_specs(variant: str) -> list[LayerSpec]:
    """Channels and stride of every choice block; the first of each stage has stride 2."""
    check_variant(variant)
    config = VARIANTS[variant]
    specs = []
    in_channels = config['first_channels']
    for width, depth in zip(config['widths'], config['depths']):
        specs.append(LayerSpec(in_channels, width, 2))
        specs.extend(LayerSpec(width, width, 1) for _ in range(depth - 1))
        in_channels = width
    return specs


def stage_last_layers(variant: str) -> list[int]:
    """Index of the last layer of each stage."""
    check_variant(variant)
    ends, total = [], 0
    for depth in VARIANTS[variant]['depths']:
        total += depth
        ends.append(total - 1)
    return ends


@SPACES.register_module()
class DetNASSpace(CategoricalSpace):
    """20 (small) or 40 (large, xlarge) layers, each choosing shuffle 3x3/5x5/7x7 or xception 3x3."""

    def __init__(self, variant: str = 'small'):
        super().__init__({key: list(CHOICE_NAMES) for key in layer_keys(variant)},
                         name=space_name(variant), version=SPACE_VERSION)
        self.variant = variant


@functools.cache
def detnas_space(variant: str) -> DetNASSpace:
    """The (shared, unchanging) space of ``variant``, for checking archs."""
    return DetNASSpace(variant)


def arch_to_choices(arch: Mapping[str, str], variant: str) -> list[str]:
    """Validates ``arch`` and returns its choice names in layer order."""
    detnas_space(variant).validate(dict(arch) if isinstance(arch, Mapping) else arch)
    return [arch[key] for key in layer_keys(variant)]


def choices_to_arch(choices: Sequence[str], variant: str) -> dict[str, str]:
    keys = layer_keys(variant)
    if len(choices) != len(keys):
        raise ArchError(f'{space_name(variant)} has {len(keys)} layers, got {len(choices)} choices')
    arch = dict(zip(keys, choices))
    detnas_space(variant).validate(arch)
    return arch


def resolve_detnas_arch(arch: str | os.PathLike | Mapping[str, str],
                        variant: str | None = None) -> tuple[str, dict[str, str]]:
    """``(variant, arch)`` for a preset name, an arch JSON path or a dict
    (see :func:`nas_tasks.architectures.resolve_arch`). A preset or document
    names its variant; ``variant``, when given, must agree with it, and a bare
    arch dict needs it."""
    if variant is None and isinstance(arch, Mapping) and not is_arch_document(arch):
        raise NasError('variant is required when arch is given as a bare dict '
                       "(or give a document with 'space', 'version' and 'arch')")
    variants = list(VARIANTS) if variant is None else [variant]
    space, arch = resolve_arch_among(arch, [detnas_space(v) for v in variants])
    return space.variant, arch


for _name, (_variant, _what, _) in _PUBLISHED_INDICES.items():
    register_arch(_name, space_name(_variant), SPACE_VERSION,
                  choices_to_arch(PRESETS[_name]['arch'], _variant),
                  description=f'DetNAS-{_variant} backbone {_what}',
                  source='https://github.com/megvii-model/DetNAS')
