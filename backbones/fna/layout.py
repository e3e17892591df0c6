"""Where FNA searches in a seed: its stages, the candidates per layer, and
how a choice of ops becomes a timm arch_def.

The seed's first stage (after the stem) and any trailing stage that is not
made of inverted-residual blocks (MobileNetV3's 1x1 ``cn`` conv) stay fixed.
Every stage between is searchable: deepened to ``depths``, its first layer
choosing an MBConv of kernel ``k`` and expansion ``e``, its other layers the
same or ``skip`` (FNA, Fang et al., ICLR 2020, section 3.2). A layer keeps
everything else of the seed layer it is remapped from (the same index, or the
stage's last beyond the seed's depth): output width, SE, activation, skip flags.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from nas_tasks.errors import NasError

from .block_strings import BlockString, format_number
from .seed import SeedDefinition

SKIP = 'skip'
# The paper's super-network depths of the six searchable MobileNetV2 stages.
DETECTION_DEPTHS = (4, 4, 4, 4, 4, 1)
SEGMENTATION_DEPTHS = (4, 4, 6, 6, 4, 1)
KERNEL_SIZES = (3, 5, 7)
EXPANSIONS = (3, 6)


def op_name(kernel: int, expansion: float) -> str:
    return f'k{kernel}_e{format_number(expansion)}'


def searchable_stages(definition: SeedDefinition) -> list[int]:
    """Stages 1.. while they hold inverted-residual blocks; the rest is the fixed tail.

    One line naming the block when a seed cannot be mapped.
    """
    stages = definition.stages
    searchable = []
    for index, stage in enumerate(stages[1:], start=1):
        if any(block.block_type != 'ir' for block in stage):
            break
        for position, block in enumerate(stage):
            if block.unsupported_options():
                _refuse(definition, index, position, block.unsupported_options())
        searchable.append(index)
    if len(stages) < 2 or not searchable:
        _refuse(definition, 1, 0, ['no inverted-residual stage after the first'])
    for index in range(searchable[-1] + 1, len(stages)):
        for position, block in enumerate(stages[index]):
            if block.block_type == 'ir':
                _refuse(definition, index, position,
                        ['an inverted-residual block after a fixed stage'])
    return searchable


def _refuse(definition: SeedDefinition, stage: int, position: int, problems: list[str]):
    block = definition.arch_def[stage][position] if stage < len(definition.arch_def) else '-'
    raise NasError(f'seed {definition.name} cannot be mapped: block blocks.{stage}.{position} '
                   f'({block}) has {", ".join(problems)}; FNA searches one run of '
                   'inverted-residual stages with one depthwise kernel each')


@dataclass(frozen=True)
class Candidate:
    name: str
    kernel: int
    expansion: float


class SearchLayout:
    """The searchable stages of ``definition`` deepened to ``depths``, and the candidates."""

    def __init__(self, definition: SeedDefinition, depths: Sequence[int] = DETECTION_DEPTHS,
                 kernel_sizes: Sequence[int] = KERNEL_SIZES,
                 expansions: Sequence[float] = EXPANSIONS):
        self.definition = definition
        self.stages = definition.stages
        self.searchable = searchable_stages(definition)
        self.depths = [int(d) for d in depths]
        if len(self.depths) != len(self.searchable) or min(self.depths, default=0) < 1:
            raise NasError(
                f'depths {list(depths)} do not fit seed {definition.name}: it has '
                f'{len(self.searchable)} searchable stages (blocks.{self.searchable[0]} to '
                f'blocks.{self.searchable[-1]}); give one depth >= 1 per stage')
        for kernel in kernel_sizes:
            if not isinstance(kernel, int) or kernel < 1 or kernel % 2 == 0:
                raise NasError(f'kernel_sizes must be odd ints >= 1, got {list(kernel_sizes)}')
        self.candidates = [Candidate(op_name(k, e), int(k), float(e))
                           for k in kernel_sizes for e in expansions]
        if not self.candidates:
            raise NasError('FNA needs at least one kernel size and one expansion')

    # -- names and sizes ---------------------------------------------------------
    @property
    def seed_depths(self) -> list[int]:
        return [len(self.stages[index]) for index in self.searchable]

    @property
    def tail(self) -> list[int]:
        return list(range(self.searchable[-1] + 1, len(self.stages)))

    def ops(self, layer: int) -> list[str]:
        """The choices of layer ``layer`` of a stage: no skip in a stage's first layer."""
        names = [c.name for c in self.candidates]
        return names if layer == 0 else names + [SKIP]

    def candidate(self, name: str) -> Candidate:
        for candidate in self.candidates:
            if candidate.name == name:
                return candidate
        raise NasError(f"unknown FNA op '{name}'; the candidates are "
                       f'{[c.name for c in self.candidates] + [SKIP]}')

    # -- block strings --------------------------------------------------------------
    def seed_block(self, stage: int, layer: int) -> BlockString:
        """The seed block that layer ``layer`` of searchable stage ``stage`` is remapped from."""
        blocks = self.stages[self.searchable[stage]]
        return blocks[min(layer, len(blocks) - 1)]

    def layer_string(self, stage: int, layer: int, op: str) -> str:
        candidate = self.candidate(op)
        stride = self.stages[self.searchable[stage]][0].stride if layer == 0 else 1
        return self.seed_block(stage, layer).single(kernel=candidate.kernel,
                                                    expansion=candidate.expansion, stride=stride)

    def arch_def(self, ops: Sequence[Sequence[str]]) -> list[list[str]]:
        """The timm arch_def of a choice of ops per searchable layer, skips removed.

        The layers left keep their order and take, by the depth rule, the
        seed layers 0, 1, 2 ... of their stage, as the official code does after
        moving the skips to the end of each stage.
        """
        self.check_ops(ops)
        definition = self.definition.arch_def
        stages = [list(stage) for stage in definition[:self.searchable[0]]]
        for stage, stage_ops in enumerate(ops):
            kept = [op for op in stage_ops if op != SKIP]
            stages.append([self.layer_string(stage, layer, op) for layer, op in enumerate(kept)])
        stages += [list(definition[index]) for index in self.tail]
        return stages

    def check_ops(self, ops: Sequence[Sequence[str]]) -> None:
        if len(ops) != len(self.depths):
            raise NasError(f'expected ops for {len(self.depths)} searchable stages, got {len(ops)}')
        for stage, (stage_ops, depth) in enumerate(zip(ops, self.depths)):
            if len(stage_ops) != depth:
                raise NasError(f'stage {stage} has {depth} layers, got {len(stage_ops)} ops')
            for layer, op in enumerate(stage_ops):
                if op not in self.ops(layer):
                    raise NasError(f"op '{op}' at stage {stage} layer {layer} is not one of "
                                   f'{self.ops(layer)}')
