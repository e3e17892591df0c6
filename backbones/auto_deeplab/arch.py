"""The Auto-DeepLab architecture: cell genotype + network path, as a JSON document.

Architecture dict (the ``arch`` of a document)::

    {"cell": [[0, "dil_conv_5x5"], [1, "sep_conv_3x3"],   # block 0
              [0, "sep_conv_3x3"], [1, "dil_conv_3x3"],   # block 1
              ...],                                        # 2 entries per block
     "path": [0, 0, 0, 1, 2, 1, 2, 2, 3, 3, 2, 1],         # level of every layer
     "filter_multiplier": 20}

* ``cell``: two ``[input, op]`` entries per block, block ``b`` at entries
  ``2b`` and ``2b+1``; the block's output is the sum of ``op(input)`` of both.
  Inputs are numbered 0 = H^{l-2} (the output of the cell two layers back),
  1 = H^{l-1} (the previous cell's output), 2 + j = the output of block j of
  this cell (so block b may take inputs 0 .. b+1). Ops are the names of
  :data:`PRIMITIVES` except 'none'. The number of blocks B is len(cell) / 2;
  the cell's output is the concatenation of all B block outputs.
* ``path``: the level of each of the L cells: 0..3 = output stride 4, 8, 16,
  32. The stem ends at level 0, the first cell is at level 0 or 1 and each
  next cell moves at most one level.
* ``filter_multiplier``: F. A cell at output stride s has B * F * s / 4
  output channels (each block F * s / 4).

Document: ``{"space": "auto-deeplab", "version": 1, "arch": {...}, "metrics": {...}}``,
written and read through :data:`AUTO_DEEPLAB_SPACE`; the presets
(``autodeeplab_s``, ``_m``, ``_l``) are registered with
:func:`nas_tasks.architectures.register_arch`.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

from nas_tasks.architectures import register_arch
from nas_tasks.errors import ArchError
from nas_tasks.space import ArchSpace
from nas_tasks.validation import check_int, is_int

from .ops import PRIMITIVES

SPACE_NAME = 'auto-deeplab'
SPACE_VERSION = 1
NUM_LEVELS = 4                       # output strides 4, 8, 16, 32
CELL_OPS = tuple(op for op in PRIMITIVES if op != 'none')
ARCH_KEYS = ('cell', 'path', 'filter_multiplier')

# The published Auto-DeepLab architecture, from the official code released with
# the paper: tensorflow/models research/deeplab/core/nas_network.py, hnasnet():
#   operations = ['atrous_5x5', 'separable_3x3_2', 'separable_3x3_2', 'atrous_3x3',
#                 'separable_3x3_2', 'separable_3x3_2', 'separable_5x5_2',
#                 'separable_5x5_2', 'separable_5x5_2', 'atrous_5x5']
#   hiddenstate_indices = [1, 0, 1, 0, 3, 1, 4, 2, 3, 5]
#   backbone = [0, 0, 0, 1, 2, 1, 2, 2, 3, 3, 2, 1]
# There (nas_cell.py, _cell_base) hidden state 0 is the previous cell's output
# and 1 the one before it; here 0 = H^{l-2} and 1 = H^{l-1}, so 0 and 1 are
# swapped; block outputs (2..6) keep their numbers. 'atrous_kxk' is
# dil_conv_kxk and 'separable_kxk_2' sep_conv_kxk. It is the cell of Fig. 3
# of the paper. The multipliers are the paper's (Table 2): F = 20, 32, 48 for
# Auto-DeepLab-S, -M, -L.
PUBLISHED_CELL = (
    (0, 'dil_conv_5x5'), (1, 'sep_conv_3x3'),
    (0, 'sep_conv_3x3'), (1, 'dil_conv_3x3'),
    (3, 'sep_conv_3x3'), (0, 'sep_conv_3x3'),
    (4, 'sep_conv_5x5'), (2, 'sep_conv_5x5'),
    (3, 'sep_conv_5x5'), (5, 'dil_conv_5x5'),
)
PUBLISHED_PATH = (0, 0, 0, 1, 2, 1, 2, 2, 3, 3, 2, 1)
PRESET_MULTIPLIERS = {'autodeeplab_s': 20, 'autodeeplab_m': 32, 'autodeeplab_l': 48}
PRESETS = {
    name: dict(cell=[list(entry) for entry in PUBLISHED_CELL], path=list(PUBLISHED_PATH),
               filter_multiplier=multiplier)
    for name, multiplier in PRESET_MULTIPLIERS.items()}


# -- cell topology -----------------------------------------------------------

def num_edges(blocks: int) -> int:
    """Edges of a search cell: block b has b + 2 inputs (2 + 3 + 4 + 5 + 6 = 20 for B = 5)."""
    return blocks * (blocks + 3) // 2


def edge_index(block: int, source: int) -> int:
    """Row of alpha for the edge from input ``source`` (numbered as in ``cell``) to ``block``."""
    if not 0 <= source < block + 2:
        raise ValueError(f'block {block} has inputs 0..{block + 1}, not {source}')
    return block * (block + 3) // 2 + source


def blocks_for_edges(edges: int) -> int:
    """B such that ``num_edges(B) == edges``."""
    blocks = 0
    while num_edges(blocks) < edges:
        blocks += 1
    if num_edges(blocks) != edges:
        raise ValueError(f'{edges} edges do not make a cell (B blocks have B(B+3)/2 edges: '
                         f'{", ".join(str(num_edges(b)) for b in range(1, 7))}, ...)')
    return blocks


def levels_at(layer: int) -> range:
    """Levels a layer of the trellis can be at: the stem (layer -1) is at level 0
    and each layer moves at most one level, so layer l reaches 0..min(l + 1, 3)."""
    return range(min(layer + 1, NUM_LEVELS - 1) + 1)


def path_strides(path: Sequence[int]) -> list[int]:
    return [4 * 2 ** level for level in path]


# -- validation -------------------------------------------------------------

def check_cell(cell: Any) -> list[list]:
    if not isinstance(cell, (list, tuple)) or not cell or len(cell) % 2:
        raise ArchError("arch key 'cell' must be a non-empty list of [input, op] pairs, two "
                        f'per block (10 for 5 blocks), got {cell!r}')
    checked = []
    for index, entry in enumerate(cell):
        block = index // 2
        if not isinstance(entry, (list, tuple)) or len(entry) != 2:
            raise ArchError(f"arch key 'cell': entry {index} must be [input, op], got {entry!r}")
        source, op = entry
        if not is_int(source) or not 0 <= source <= block + 1:
            raise ArchError(f"arch key 'cell': entry {index} (block {block}) has input "
                            f'{source!r}; allowed inputs 0..{block + 1} (0 = H^(l-2), '
                            '1 = H^(l-1), 2+j = block j)')
        if op not in CELL_OPS:
            raise ArchError(f"arch key 'cell': entry {index} has op {op!r}; allowed ops: "
                            f'{", ".join(CELL_OPS)}')
        checked.append([source, op])
    return checked


def check_path(path: Any) -> list[int]:
    if not isinstance(path, (list, tuple)) or not path:
        raise ArchError(f"arch key 'path' must be a non-empty list of levels 0..{NUM_LEVELS - 1}, "
                        f'got {path!r}')
    previous = 0                       # the stem ends at level 0
    for layer, level in enumerate(path):
        if not is_int(level) or not 0 <= level < NUM_LEVELS:
            raise ArchError(f"arch key 'path': layer {layer} has level {level!r}; allowed levels "
                            f'0..{NUM_LEVELS - 1} (output strides 4, 8, 16, 32)')
        if abs(level - previous) > 1:
            allowed = [v for v in (previous - 1, previous, previous + 1) if 0 <= v < NUM_LEVELS]
            raise ArchError(f"arch key 'path': layer {layer} goes from level {previous} to "
                            f'{level}; a layer moves at most one level (allowed: {allowed})')
        previous = level
    return list(path)


def validate_arch(arch: Any) -> None:
    """Raises :class:`ArchError` naming the bad key unless ``arch`` is an Auto-DeepLab arch."""
    if not isinstance(arch, Mapping):
        raise ArchError(f'an auto-deeplab arch must be a dict with keys {", ".join(ARCH_KEYS)}, '
                        f'got {type(arch).__name__}')
    if set(arch) != set(ARCH_KEYS):
        unknown = sorted(set(arch) - set(ARCH_KEYS))
        problem = (f'has unknown key {unknown[0]!r}' if unknown else
                   f'is missing key {next(k for k in ARCH_KEYS if k not in arch)!r}')
        raise ArchError(f'arch {problem}; an auto-deeplab arch has exactly the keys '
                        f'{", ".join(ARCH_KEYS)}')
    multiplier = arch['filter_multiplier']
    check_int("arch key 'filter_multiplier'", multiplier, hint='the paper: 20, 32 or 48',
              error=ArchError)
    check_cell(arch['cell'])
    check_path(arch['path'])


# -- the arch type as a space: documents and the resolver --------------------

class AutoDeepLabSpace(ArchSpace):
    """Auto-DeepLab's archs, named and versioned for documents and
    :func:`~nas_tasks.architectures.resolve_arch`. Not a CategoricalSpace: an
    arch is a cell, a path and a filter multiplier, and the search is
    differentiable, so nothing samples from it."""
    name = SPACE_NAME
    version = SPACE_VERSION

    def validate(self, arch: Any) -> None:
        validate_arch(arch)


AUTO_DEEPLAB_SPACE = AutoDeepLabSpace()

for _name, _multiplier in PRESET_MULTIPLIERS.items():
    register_arch(_name, SPACE_NAME, SPACE_VERSION, PRESETS[_name],
                  description=f'Auto-DeepLab-{_name[-1].upper()} (F = {_multiplier}), '
                              'the published cell and path',
                  source='tensorflow/models: research/deeplab/core/nas_network.py, hnasnet()')


def save_arch_document(path: str | os.PathLike, arch: Mapping,
                       metrics: Mapping | None = None) -> None:
    """Write ``arch`` (validated) and ``metrics`` to ``path`` as a JSON document, atomically."""
    AUTO_DEEPLAB_SPACE.save_arch(path, arch, metrics)
