"""The AutoGAN generator search space (Gong et al., ICCV 2019), as its official code has it.

A generator is three up-sampling cells (4 -> 8 -> 16 -> 32 px at CIFAR-10
size). Cell ``i`` (1-based, as in the paper) makes these decisions, stored
under ``cell{i}.<decision>`` and searched one cell (stage) at a time:

* ``conv``: ``'post'`` or ``'pre'``-activation conv blocks;
* ``norm``: ``None``, ``'bn'`` (batch) or ``'in'`` (instance, no affine);
* ``up``: ``'bilinear'``, ``'nearest'`` or ``'deconv'`` (transposed conv);
* ``shortcut``: whether the cell adds its in-cell shortcut;
* cells 2 and 3 only, ``skip_from_cell{j}`` for each earlier cell ``j``:
  whether cell j's skip feature is added inside this cell.

The official controller emits the skips of a cell as one categorical token
(2 values for cell 2, 4 for cell 3); a boolean per source has the same count
(36 x 72 x 144 = 373,248 architectures) and names its meaning.
:meth:`AutoGANSpace.to_vector` and :meth:`AutoGANSpace.from_vector` convert
to and from the official 14-integer vector
``[C1,N1,U1,SC1, C2,N2,U2,SC2,SKIP2, C3,N3,U3,SC3,SKIP3]``.

Plain Python: needs no torch.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

from nas_tasks import architectures
from nas_tasks.errors import ArchError
from nas_tasks.registry import SPACES
from nas_tasks.space import Arch, StagedSpace
from nas_tasks.validation import is_int

SPACE_NAME = 'autogan'
SPACE_VERSION = 1
NUM_CELLS = 3

# Options in the order of the official integer codes (models_search/building_blocks_search.py).
CONV_TYPES = ['post', 'pre']
NORM_TYPES = [None, 'bn', 'in']
UP_TYPES = ['bilinear', 'nearest', 'deconv']
SHORTCUT_TYPES = [False, True]
SKIP_TYPES = [False, True]

# Per cell, the decisions before the skips, in the official vector's order.
CELL_DECISIONS = {'conv': CONV_TYPES, 'norm': NORM_TYPES, 'up': UP_TYPES,
                  'shortcut': SHORTCUT_TYPES}


def cell_key(cell: int, decision: str) -> str:
    return f'cell{cell}.{decision}'


def skip_key(cell: int, source: int) -> str:
    return cell_key(cell, f'skip_from_cell{source}')


class CellArch(NamedTuple):
    """The decisions of one cell, decoded for the networks."""
    conv: str
    norm: str | None
    up: str
    shortcut: bool
    skip_from: tuple[int, ...]  # the 1-based earlier cells whose skip feature it adds


def _stage_choices(cell: int) -> dict[str, list]:
    choices = {cell_key(cell, decision): list(options) for decision, options in CELL_DECISIONS.items()}
    choices.update({skip_key(cell, source): list(SKIP_TYPES) for source in range(1, cell)})
    return choices


def _stage_length(cell: int) -> int:
    """Integers cell ``cell`` takes in the official vector: four, plus one skip token after cell 1."""
    return len(CELL_DECISIONS) + (cell > 1)


def _skip_token(skips: Sequence[bool]) -> int:
    # The official code fills the skip flags from the binary digits of the token,
    # most significant first: for cell 3, 2 = from cell 1 and 1 = from cell 2.
    return sum(int(on) << (len(skips) - 1 - index) for index, on in enumerate(skips))


def _skip_flags(token: int, num_sources: int) -> list[bool]:
    return [bool(token >> (num_sources - 1 - index) & 1) for index in range(num_sources)]


@SPACES.register_module()
class AutoGANSpace(StagedSpace):
    """The three-cell generator space; stage ``s`` is cell ``s + 1``."""

    def __init__(self):
        super().__init__([_stage_choices(cell) for cell in range(1, NUM_CELLS + 1)],
                         name=SPACE_NAME, version=SPACE_VERSION)

    def cells(self, arch: Arch) -> list[CellArch]:
        """The decoded cells that ``arch`` (a whole arch or a stage prefix) decides."""
        decided = self.stage_of(arch) + 1
        return [CellArch(*(arch[cell_key(cell, decision)] for decision in CELL_DECISIONS),
                         skip_from=tuple(source for source in range(1, cell)
                                         if arch[skip_key(cell, source)]))
                for cell in range(1, decided + 1)]

    def to_vector(self, arch: Arch) -> list[int]:
        """The official integer vector of ``arch`` (14 long; 4 or 9 for a prefix)."""
        vector = []
        for cell, decoded in enumerate(self.cells(arch), start=1):
            vector += [options.index(value) for options, value
                       in zip(CELL_DECISIONS.values(), decoded[:len(CELL_DECISIONS)])]
            if cell > 1:
                vector.append(_skip_token([arch[skip_key(cell, source)] for source in range(1, cell)]))
        return vector

    def from_vector(self, vector: Sequence[int]) -> Arch:
        """The arch of an official integer vector (14 long; 4 or 9 for a prefix).

        Raises :class:`ArchError` naming the bad position unless it is one.
        """
        lengths = [sum(_stage_length(cell) for cell in range(1, last + 1))
                   for last in range(1, NUM_CELLS + 1)]
        if not isinstance(vector, (list, tuple)) or len(vector) not in lengths:
            raise ArchError(f'an AutoGAN arch vector is a list of {lengths[-1]} integers '
                            f'[C1,N1,U1,SC1, C2,N2,U2,SC2,SKIP2, C3,N3,U3,SC3,SKIP3] '
                            f'(or the prefix of {lengths[0]} or {lengths[1]}), got {vector!r}')
        values = iter(enumerate(vector))
        arch: Arch = {}
        for cell in range(1, lengths.index(len(vector)) + 2):
            for decision, options in CELL_DECISIONS.items():
                arch[cell_key(cell, decision)] = options[_code(values, len(options), decision)]
            if cell > 1:
                token = _code(values, 2 ** (cell - 1), f'skip of cell {cell}')
                arch.update(zip((skip_key(cell, source) for source in range(1, cell)),
                                _skip_flags(token, cell - 1)))
        return arch


def _code(values, num_options: int, what: str) -> int:
    position, code = next(values)
    if not is_int(code) or not 0 <= code < num_options:
        raise ArchError(f'AutoGAN arch vector position {position} ({what}) must be an integer '
                        f'0..{num_options - 1}, got {code!r}')
    return code


# The published generators (models/autogan_cifar10_{a,b,c}.py of the official
# code), as official vectors. All use pre-activation blocks and no deconv.
PRESET_VECTORS: dict[str, tuple[list[int], str]] = {
    'autogan_cifar10_a': ([1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 0, 1, 0, 3],
                          'cell1 nearest + shortcut; cell2 bilinear + shortcut, skip from cell1; '
                          'cell3 nearest, no shortcut, skips from cells 1 and 2; no norm'),
    'autogan_cifar10_b': ([1, 0, 1, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 3],
                          'every cell nearest + shortcut, skips as in a; no norm'),
    'autogan_cifar10_c': ([1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 1, 0, 3],
                          'as autogan_cifar10_a, but cell1 uses batch norm'),
}


def _register_presets() -> dict[str, Arch]:
    space = AutoGANSpace()
    presets = {}
    for name, (vector, description) in PRESET_VECTORS.items():
        presets[name] = space.from_vector(vector)
        architectures.register_arch(name, SPACE_NAME, SPACE_VERSION, presets[name],
                                    description=f'AutoGAN CIFAR-10 generator: {description}',
                                    source='VITA-Group/AutoGAN: models/' + name + '.py')
    return presets


PRESETS: dict[str, Arch] = _register_presets()

