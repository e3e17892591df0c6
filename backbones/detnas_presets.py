"""DetNAS variants, published architectures and the architecture format.

An architecture is a dict ``{"layer00": "shuffle7x7", "layer01": ..., ...}``
with one key per choice block (20 for 'small', 40 for 'large'/'xlarge'). Arch
files are JSON ``{"space": "detnas-small", "version": 1, "arch": {...},
"metrics": {...}}``. Plain Python: needs neither torch nor mmdet.
"""
import os
from typing import Mapping, NamedTuple, Sequence

from nas_tasks.errors import ArchError, NasError
from nas_tasks.space import load_arch

from .shufflenet_blocks import CHOICE_NAMES

SPACE_VERSION = 1

VARIANTS = {
    'small': dict(first_channels=16, widths=(64, 160, 320, 640), depths=(4, 4, 8, 4)),
    'large': dict(first_channels=48, widths=(96, 240, 480, 960), depths=(8, 8, 16, 8)),
    'xlarge': dict(first_channels=72, widths=(172, 432, 864, 1728), depths=(8, 8, 16, 8)),
}

# Choice indices per block as published with the official DetNAS code.
_PUBLISHED_INDICES = {
    'detnas_300m_coco_fpn': (
        'small', [2, 1, 2, 0, 2, 1, 1, 2, 3, 3, 1, 3, 0, 0, 3, 1, 3, 1, 3, 2]),
    'detnas_300m_coco_retinanet': (
        'small', [2, 3, 1, 1, 3, 2, 1, 3, 3, 1, 1, 1, 3, 3, 2, 0, 3, 3, 3, 3]),
    'detnas_300m_voc_fpn': (
        'small', [2, 1, 0, 3, 1, 3, 0, 3, 2, 0, 1, 1, 3, 3, 3, 3, 3, 3, 3, 1]),
    'detnas_300m_voc_retinanet': (
        'small', [1, 3, 0, 0, 2, 3, 3, 3, 2, 3, 3, 3, 3, 2, 2, 0, 2, 3, 1, 1]),
    'detnas_1.3g_coco_fpn': (
        'large', [0, 0, 3, 1, 2, 1, 0, 2, 0, 3, 1, 2, 3, 3, 2, 0, 2, 1, 1, 3,
                  2, 0, 2, 2, 2, 1, 3, 1, 0, 3, 3, 3, 1, 3, 3, 3, 3, 3, 3, 3]),
}
# name -> dict(variant=..., arch=tuple of choice names, one per layer)
PRESETS = {
    name: dict(variant=variant, arch=tuple(CHOICE_NAMES[i] for i in indices))
    for name, (variant, indices) in _PUBLISHED_INDICES.items()
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


def arch_to_choices(arch: Mapping[str, str], variant: str) -> list[str]:
    """Validates ``arch`` and returns its choice names in layer order."""
    keys = layer_keys(variant)
    if not isinstance(arch, Mapping):
        raise ArchError(f'a {space_name(variant)} arch must be a dict of layerNN -> choice, '
                        f'got {type(arch).__name__}')
    unknown = [key for key in arch if key not in keys]
    if unknown:
        raise ArchError(f'arch key {unknown[0]!r} is not a layer of {space_name(variant)} '
                        f'(keys are {keys[0]}..{keys[-1]})')
    missing = [key for key in keys if key not in arch]
    if missing:
        raise ArchError(f'arch is missing {missing[0]} (a {space_name(variant)} arch has '
                        f'keys {keys[0]}..{keys[-1]})')
    for key in keys:
        if arch[key] not in CHOICE_NAMES:
            raise ArchError(f'{key}: {arch[key]!r} is not a block choice; allowed: '
                            f'{", ".join(CHOICE_NAMES)}')
    return [arch[key] for key in keys]


def choices_to_arch(choices: Sequence[str], variant: str) -> dict[str, str]:
    keys = layer_keys(variant)
    if len(choices) != len(keys):
        raise ArchError(f'{space_name(variant)} has {len(keys)} layers, got {len(choices)} choices')
    return validated_arch(dict(zip(keys, choices)), variant)


def validated_arch(arch: Mapping[str, str], variant: str) -> dict[str, str]:
    """A validated copy of ``arch`` with its keys in layer order."""
    return dict(zip(layer_keys(variant), arch_to_choices(arch, variant)))


def resolve_arch(arch: str | os.PathLike | Mapping[str, str],
                 variant: str | None = None) -> tuple[str, dict[str, str]]:
    """Turns a preset name, an arch JSON path or an arch dict into a validated
    ``(variant, arch dict)``. ``variant`` is required for a dict and, when
    given with a preset or file, must agree with it."""
    if isinstance(arch, Mapping):
        if variant is None:
            raise NasError('variant is required when arch is given as a dict')
        return variant, validated_arch(arch, variant)
    if isinstance(arch, str) and arch in PRESETS:
        found_variant, arch_dict = _preset_arch(arch)
        source = f'preset {arch!r}'
    else:
        found_variant, arch_dict = _load_arch_file(arch)
        source = f'arch file {os.fspath(arch)}'
    if variant is not None and variant != found_variant:
        raise ArchError(f'{source} is for {space_name(found_variant)}, '
                        f'but variant={variant!r} was given')
    return found_variant, arch_dict


def _preset_arch(name: str) -> tuple[str, dict[str, str]]:
    preset = PRESETS[name]
    return preset['variant'], choices_to_arch(preset['arch'], preset['variant'])


def _load_arch_file(path: str | os.PathLike) -> tuple[str, dict[str, str]]:
    if not os.path.isfile(path):
        raise NasError(f'arch {os.fspath(path)!r} is neither a DetNAS preset '
                       f'({", ".join(PRESETS)}) nor an existing JSON file')
    content = load_arch(path)
    if 'space' not in content or 'arch' not in content:
        raise ArchError(f'arch file {os.fspath(path)} must be a JSON object with "space", '
                        f'"version" and "arch" keys')
    spaces = {space_name(v): v for v in VARIANTS}
    if content['space'] not in spaces:
        raise ArchError(f'arch file {os.fspath(path)} is for space {content["space"]!r}, '
                        f'not a DetNAS space ({", ".join(spaces)})')
    if content.get('version') != SPACE_VERSION:
        raise ArchError(f'arch file {os.fspath(path)} has version {content.get("version")!r}; '
                        f'{content["space"]} is version {SPACE_VERSION}')
    variant = spaces[content['space']]
    try:
        return variant, validated_arch(content['arch'], variant)
    except ArchError as error:
        raise ArchError(f'arch file {os.fspath(path)}: {error}') from None
