"""The NAS-FPN search space (Ghiasi et al., CVPR 2019) and the published architecture.

A pyramid network takes the features P3..P7 (indices 0..4) and runs a chain of
merging cells. Cell ``i`` makes four decisions, stored under
``cell{i}.input0``, ``cell{i}.input1``, ``cell{i}.level`` and ``cell{i}.op``:

* ``input0``, ``input1``: two different features among those that exist
  before it, i.e. indices ``0 .. num_inputs + i - 1`` (the inputs, then the
  outputs of cells ``0 .. i - 1``);
* ``level``: the level of its output, 3..7 (stride ``2**level``);
* ``op``: ``'sum'`` or ``'global_pool'`` (global pooling attention).

The last ``num_inputs`` cells are the output cells; their outputs are the new
P3..P7. Their levels are fixed by the space (``output_levels``, by default the
order P3, P4, P5, P7, P6 of the published architecture), so each of their
``level`` keys has a single option. (In the paper the controller also picked
the output order; per-cell categorical levels cannot express "a permutation"
without most draws and every one-step mutation being invalid, so the order is
a parameter of the space instead.) Arch files still record every level, so a
space rejects a file made for another output order, and
:meth:`NASFPNSpace.for_arch` reads the order back from the file. Intermediate
cells do not output P3 by default, as in the paper's search ("we avoid
selecting stride 8 feature in intermediate merging cells").

Rules taken from the official TensorFlow code (``tensorflow/tpu``,
``models/official/detection/modeling/architecture/nasfpn.py``):

* a feature that no cell has consumed yet when an output cell at its level
  runs is added to that cell's merged features, before ReLU -> 3x3 conv -> BN
  (each such feature is added once); see :meth:`NASFPNSpace.cell_specs`;
* the outputs are the last ``num_inputs`` cells, keyed by their level.

``'global_pool'`` follows mmcv's ``GlobalPoolingCell`` as used by mmdet's
``NASFPN``: ``input0 + sigmoid(avg_pool(input0)) * input1``, the attention
coming from ``input0``. (The TensorFlow code takes it from the coarser input,
with max pooling; mmdet's port differs there, and the preset reproduces mmdet.)

Plain Python: needs neither torch nor mmdet.
"""
from __future__ import annotations

import os
import random
import re
from typing import Any, Callable, Mapping, NamedTuple, Sequence

from nas_tasks import architectures
from nas_tasks.errors import ArchError, NasError
from nas_tasks.registry import SPACES
from nas_tasks.space import Arch, ArchSpace, CategoricalSpace
from nas_tasks.validation import is_int

SPACE_NAME = 'nas-fpn'
SPACE_VERSION = 1
MIN_LEVEL = 3
DEFAULT_NUM_CELLS = 7
OPS = ('sum', 'global_pool')
DECISIONS = ('input0', 'input1', 'level', 'op')
# Output levels of the last five cells of the published NAS-FPN.
PUBLISHED_OUTPUT_LEVELS = (3, 4, 5, 7, 6)
# A valid arch is found quickly (about 1 in 3 uniform draws is valid).
MAX_DRAWS = 1000

_CELL_KEY = re.compile(r'^cell(\d+)\.')


def arch_key(cell: int, decision: str) -> str:
    return f'cell{cell}.{decision}'


def cells_to_arch(cells: Sequence[tuple[int, int, int, str]]) -> Arch:
    """An arch from ``(input0, input1, level, op)`` per cell."""
    return {arch_key(cell, decision): value
            for cell, decisions in enumerate(cells)
            for decision, value in zip(DECISIONS, decisions)}


# The published NAS-FPN, as ``NASFPN_BLOCK_SPECS`` in the official code (same
# input indices and levels; 'attention' is 'global_pool'). With this arch,
# :class:`~detection.nas_fpn.neck.SearchableNASFPN` computes mmdet's ``NASFPN``.
PRESETS: dict[str, Arch] = {
    'nas_fpn': cells_to_arch([
        (1, 3, 4, 'global_pool'),
        (1, 5, 4, 'sum'),
        (0, 6, 3, 'sum'),
        (6, 7, 4, 'sum'),
        (7, 8, 5, 'global_pool'),
        (6, 9, 7, 'global_pool'),
        (9, 10, 6, 'global_pool'),
    ]),
}
architectures.register_arch(
    'nas_fpn', SPACE_NAME, SPACE_VERSION, PRESETS['nas_fpn'],
    description="The published NAS-FPN pyramid network (mmdet's NASFPN)",
    source='tensorflow/tpu: models/official/detection/modeling/architecture/nasfpn.py')


class CellSpec(NamedTuple):
    """What one merging cell computes, with feature indices as in the arch."""
    input0: int
    input1: int
    level: int
    op: str
    # Features no cell has consumed when this output cell runs: added to its
    # merged inputs before the output conv.
    unused_inputs: tuple[int, ...]


@SPACES.register_module()
class NASFPNSpace(CategoricalSpace):
    """The NAS-FPN merging-cell space (see the module docstring).

    Args:
        num_cells: number of merging cells, at least ``num_inputs``.
        num_inputs: number of pyramid levels, P3 .. P(2 + num_inputs).
        output_levels: the levels of the last ``num_inputs`` cells in order, a
            permutation of the levels. Defaults to the published order
            (3, 4, 5, 7, 6) for five levels, ascending otherwise.
        intermediate_levels: the levels the other cells may choose from.
            Defaults to all but the finest level, as in the paper.
    """

    def __init__(self, num_cells: int = DEFAULT_NUM_CELLS, num_inputs: int = 5,
                 output_levels: Sequence[int] | None = None,
                 intermediate_levels: Sequence[int] | None = None):
        if not is_int(num_inputs) or num_inputs < 2:
            raise NasError(f'NAS-FPN needs num_inputs >= 2 pyramid levels, got {num_inputs!r}')
        if not is_int(num_cells) or num_cells < num_inputs:
            raise NasError(f'NAS-FPN needs num_cells >= num_inputs ({num_inputs}), one output '
                           f'cell per level, got {num_cells!r}')
        levels = tuple(range(MIN_LEVEL, MIN_LEVEL + num_inputs))
        if output_levels is None:
            output_levels = (PUBLISHED_OUTPUT_LEVELS
                             if num_inputs == len(PUBLISHED_OUTPUT_LEVELS) else levels)
        if sorted(output_levels) != list(levels):
            raise NasError(f'output_levels must list each of the levels {_span(levels)} once, '
                           f'got {tuple(output_levels)}')
        if intermediate_levels is None:
            intermediate_levels = levels[1:]
        if not intermediate_levels or not set(intermediate_levels) <= set(levels):
            raise NasError(f'intermediate_levels must be a non-empty subset of {_span(levels)}, '
                           f'got {tuple(intermediate_levels)}')
        self.num_cells = num_cells
        self.num_inputs = num_inputs
        self.levels = levels
        self.output_levels = tuple(output_levels)
        self.intermediate_levels = tuple(sorted(set(intermediate_levels)))
        self.first_output_cell = num_cells - num_inputs

        choices = {}
        for cell in range(num_cells):
            candidates = list(range(num_inputs + cell))
            choices[arch_key(cell, 'input0')] = candidates
            choices[arch_key(cell, 'input1')] = candidates
            choices[arch_key(cell, 'level')] = self._allowed_levels(cell)
            choices[arch_key(cell, 'op')] = list(OPS)
        super().__init__(choices, name=SPACE_NAME, version=SPACE_VERSION)

    @classmethod
    def for_arch(cls, arch: Any, num_inputs: int = 5) -> NASFPNSpace:
        """The space to check ``arch`` against when building a network: its
        number of cells and output order are read from ``arch`` and
        intermediate cells may take any level, so an arch from any NAS-FPN
        space with ``num_inputs`` levels fits. What cannot be read falls back
        to the defaults, and :meth:`validate` then reports the problem."""
        levels = list(range(MIN_LEVEL, MIN_LEVEL + num_inputs))
        num_cells, output_levels = DEFAULT_NUM_CELLS, None
        if isinstance(arch, Mapping):
            cells = [int(match[1]) for key in arch
                     if isinstance(key, str) and (match := _CELL_KEY.match(key))]
            num_cells = max(cells) + 1 if cells else DEFAULT_NUM_CELLS
            written_levels = [arch.get(arch_key(cell, 'level'))
                              for cell in range(num_cells - num_inputs, num_cells)]
            if all(map(is_int, written_levels)) and sorted(written_levels) == levels:
                output_levels = written_levels
        return cls(max(num_cells, num_inputs), num_inputs, output_levels,
                   intermediate_levels=levels)

    def is_output_cell(self, cell: int) -> bool:
        return cell >= self.first_output_cell

    def _allowed_levels(self, cell: int) -> list[int]:
        if self.is_output_cell(cell):
            return [self.output_levels[cell - self.first_output_cell]]
        return list(self.intermediate_levels)

    # -- validity ---------------------------------------------------------------

    def validate(self, arch: Arch) -> None:
        """Raise :class:`ArchError` unless ``arch`` is a valid architecture of
        this space; the message names the first bad cell and decision."""
        if isinstance(arch, dict) and arch.keys() == set(self.keys):
            for cell in range(self.num_cells):
                self._check_cell(arch, cell)
        # Reports a non-dict and missing or unknown keys.
        super().validate(arch)

    def _check_cell(self, arch: Arch, cell: int) -> None:
        input0, input1, level, op = (arch[arch_key(cell, d)] for d in DECISIONS)
        self._check_input(cell, 'input0', input0)
        self._check_input(cell, 'input1', input1)
        if input0 == input1:
            raise ArchError(f'cell {cell}: input1 ({input1}) must differ from input0 ({input0})')
        allowed = self._allowed_levels(cell)
        if not (is_int(level) and level in allowed):
            if self.is_output_cell(cell):
                raise ArchError(f'cell {cell}: level must be {allowed[0]}, got {level!r} (the last '
                                f'{self.num_inputs} cells output the levels '
                                f'{self.output_levels} in this order)')
            raise ArchError(f'cell {cell}: level must be one of {_listed(allowed)}, got {level!r}')
        if op not in OPS:
            raise ArchError(f'cell {cell}: op must be one of {_listed(OPS)}, got {op!r}')

    def _check_input(self, cell: int, decision: str, value: Any) -> None:
        num_candidates = self.num_inputs + cell
        if is_int(value) and 0 <= value < num_candidates:
            return
        candidates = (f'P{MIN_LEVEL}..P{self.levels[-1]} are 0..{self.num_inputs - 1}'
                      + (f', the outputs of cells 0..{cell - 1} are {self.num_inputs}..'
                         f'{num_candidates - 1}' if cell else ''))
        if is_int(value) and num_candidates <= value < self.num_inputs + self.num_cells:
            raise ArchError(f'cell {cell}: {decision} ({value}) is the output of cell '
                            f'{value - self.num_inputs}, which does not exist yet ({candidates})')
        raise ArchError(f'cell {cell}: {decision} must be a feature index from 0 to '
                        f'{num_candidates - 1} ({candidates}), got {value!r}')

    def allowed_options(self, key: str, partial_arch: Arch) -> list[bool] | None:
        """Which options of ``key`` are valid given the decisions made before it
        (``partial_arch``, in :attr:`keys` order): a cell's ``input1`` must
        differ from its ``input0``; every other decision is unconstrained
        (None). The RL controller masks its logits with this, so it never
        proposes an invalid pyramid."""
        cell, decision = _split_key(key)
        input0 = partial_arch.get(arch_key(cell, 'input0'))
        if decision != 'input1' or input0 is None:
            return None
        return [option != input0 for option in self.options(key)]

    # -- drawing only valid architectures ---------------------------------------

    def sample(self, rng: random.Random) -> Arch:
        """An architecture drawn uniformly among the valid ones."""
        draw = super().sample
        return self._first_valid(lambda: draw(rng))

    def mutate(self, arch: Arch, prob: float, rng: random.Random) -> Arch:
        draw = super().mutate
        return self._first_valid(lambda: draw(arch, prob, rng))

    def mutate_one(self, arch: Arch, rng: random.Random) -> Arch:
        draw = super().mutate_one
        return self._first_valid(lambda: draw(arch, rng))

    def crossover(self, a: Arch, b: Arch, rng: random.Random) -> Arch:
        draw = super().crossover
        return self._first_valid(lambda: draw(a, b, rng))

    def _first_valid(self, draw: Callable[[], Arch]) -> Arch:
        for _ in range(MAX_DRAWS):
            arch = draw()
            if self.is_valid(arch):
                return arch
        raise NasError(f"no valid '{self.name}' architecture in {MAX_DRAWS} draws; "
                       'are the parents valid architectures of this space?')

    # -- what a network needs -------------------------------------------------

    def cell_specs(self, arch: Arch) -> list[CellSpec]:
        """The cells of a valid ``arch`` in order, with the unused features each
        output cell adds (the rule of the official code: a feature that no cell
        has taken as an input so far, at the output cell's level; once added it
        counts as used)."""
        self.validate(arch)
        feature_levels = list(self.levels)
        num_consumers = [0] * self.num_inputs
        specs = []
        for cell in range(self.num_cells):
            input0, input1, level, op = (arch[arch_key(cell, d)] for d in DECISIONS)
            num_consumers[input0] += 1
            num_consumers[input1] += 1
            unused = ()
            if self.is_output_cell(cell):
                unused = tuple(index for index, (feature_level, count)
                               in enumerate(zip(feature_levels, num_consumers))
                               if count == 0 and feature_level == level)
                for index in unused:
                    num_consumers[index] += 1
            specs.append(CellSpec(input0, input1, level, op, unused))
            feature_levels.append(level)
            num_consumers.append(0)
        return specs


class BuildableNASFPNArchs(ArchSpace):
    """Every NAS-FPN arch a neck with ``num_inputs`` levels can build (checked
    against :meth:`NASFPNSpace.for_arch`, whatever its number of cells and
    output order), as one space for :func:`~nas_tasks.architectures.resolve_arch`."""
    name = SPACE_NAME
    version = SPACE_VERSION

    def __init__(self, num_inputs: int = 5):
        self.num_inputs = num_inputs

    def validate(self, arch: Arch) -> None:
        NASFPNSpace.for_arch(arch, self.num_inputs).validate(arch)


def resolve_pyramid(arch: str | os.PathLike | Mapping, num_inputs: int = 5
                    ) -> tuple[NASFPNSpace, Arch]:
    """``(space, arch)`` for a preset name, an arch JSON path or a dict (see
    :func:`~nas_tasks.architectures.resolve_arch`), the space being
    :meth:`NASFPNSpace.for_arch`: what a network of the arch needs."""
    arch = architectures.resolve_arch(arch, BuildableNASFPNArchs(num_inputs))
    return NASFPNSpace.for_arch(arch, num_inputs), arch


def _split_key(key: str) -> tuple[int, str]:
    """``'cell3.input1'`` -> ``(3, 'input1')``."""
    match = _CELL_KEY.match(key)
    if match is None:
        raise ArchError(f"'{key}' is not a NAS-FPN decision (cell<i>.<decision>)")
    return int(match[1]), key[match.end():]


def _span(levels: Sequence[int]) -> str:
    return f'{levels[0]}..{levels[-1]}'


def _listed(options: Sequence) -> str:
    return ', '.join(map(repr, options))
