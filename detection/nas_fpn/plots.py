"""Pictures of a NAS-FPN search: the found pyramid network and the controller's rewards.

matplotlib only. PNG files are written atomically, like the search loop's plots.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from nas_tasks.plots import _save_atomically  # also selects the Agg backend

import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from .space import MIN_LEVEL, resolve_pyramid

_COLOURS = dict(input='#d9d9d9', cell='#9ecae1', output='#fdae6b')
_OP_NAMES = dict(sum='sum', global_pool='global pool')


def draw_pyramid(arch: Mapping, path: str | Path, num_inputs: int = 5,
                 title: str | None = None) -> None:
    """Draw one pyramid network of ``arch`` (dict, preset name or arch file).

    The y axis is the pyramid level (P3 at the bottom), the x axis the order of
    computation: the input features P3..P7 first, then one column per merging
    cell, labelled with its op and output level. Arrows go from a cell's two
    inputs to it; dashed arrows are the unused features an output cell adds.
    Output cells (the new P3..P7) are orange.
    """
    space, arch = resolve_pyramid(arch, num_inputs)
    specs = space.cell_specs(arch)
    # (x, level) of every feature: the inputs, then each cell's output.
    positions = [(0, level) for level in space.levels]
    positions += [(cell + 1, spec.level) for cell, spec in enumerate(specs)]

    figure, axes = plt.subplots(
        figsize=(1.3 * (len(specs) + 1) + 1.5, 0.9 * len(space.levels) + 1.6))
    for cell, spec in enumerate(specs):
        target = positions[num_inputs + cell]
        for source in (spec.input0, spec.input1):
            _arrow(axes, positions[source], target, dashed=False)
        for source in spec.unused_inputs:
            _arrow(axes, positions[source], target, dashed=True)

    for index, (x, level) in enumerate(positions):
        if index < num_inputs:
            text, colour = f'P{level}', _COLOURS['input']
        else:
            cell = index - num_inputs
            spec = specs[cell]
            output = space.is_output_cell(cell)
            text = f'cell {cell}\n{_OP_NAMES[spec.op]}' + (f'\nout P{level}' if output else '')
            colour = _COLOURS['output' if output else 'cell']
        axes.text(x, level, text, ha='center', va='center', fontsize=8, zorder=3,
                  bbox=dict(boxstyle='round,pad=0.4', facecolor=colour, edgecolor='#404040'))

    axes.set_xlim(-0.7, len(specs) + 0.7)
    axes.set_ylim(MIN_LEVEL - 0.7, space.levels[-1] + 0.7)
    axes.set_yticks(list(space.levels),
                    [f'P{level} (stride {2 ** level})' for level in space.levels])
    axes.set_xticks([0] + [cell + 1 for cell in range(len(specs))],
                    ['inputs'] + [str(cell) for cell in range(len(specs))])
    axes.set_xlabel('merging cell')
    for side in ('top', 'right'):
        axes.spines[side].set_visible(False)
    axes.legend(handles=[
        Patch(facecolor=_COLOURS['input'], edgecolor='#404040', label='input feature'),
        Patch(facecolor=_COLOURS['cell'], edgecolor='#404040', label='intermediate cell'),
        Patch(facecolor=_COLOURS['output'], edgecolor='#404040', label='output cell'),
        Line2D([], [], color='#404040', label='cell input'),
        Line2D([], [], color='#404040', linestyle='--', label='unused feature added'),
    ], loc='upper left', bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    axes.set_title(title or f'NAS-FPN pyramid network ({len(specs)} merging cells)')
    _save_atomically(figure, Path(path))


def _arrow(axes, source: tuple[int, int], target: tuple[int, int], dashed: bool) -> None:
    # Longer arrows bend more, so that they pass around the boxes in between.
    span = abs(target[0] - source[0])
    bend = min(0.15 + 0.07 * (span - 1), 0.5)
    axes.annotate('', xy=target, xytext=source, zorder=2, arrowprops=dict(
        arrowstyle='-|>', color='#404040', lw=1.0, shrinkA=12, shrinkB=24,
        linestyle='--' if dashed else '-', connectionstyle=f'arc3,rad={bend}'))


