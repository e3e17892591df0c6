"""Pictures of an Auto-DeepLab architecture: the network path and the cell DAG.

matplotlib only (Agg); PNG files are written atomically like the search plots.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from nas_tasks.plots import _save_atomically  # also selects the Agg backend

import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

from .arch import NUM_LEVELS, check_cell, check_path, levels_at

_COLOURS = dict(input='#d9d9d9', block='#9ecae1', output='#fdae6b')


def draw_path(path: Sequence[int], file: str | Path, title: str | None = None) -> None:
    """The path through the trellis: layers on x (the stem at -1), output
    strides 4..32 on y (4 at the top); every reachable node faint, the path bold."""
    path = check_path(list(path))
    figure, axes = plt.subplots(figsize=(0.55 * len(path) + 2.5, 3.2))
    for layer in range(-1, len(path)):
        levels = list(levels_at(layer))
        axes.scatter([layer] * len(levels), levels, s=60, color='#bdbdbd', alpha=0.5, zorder=1)
    layers = list(range(-1, len(path)))
    levels = [0, *path]
    axes.plot(layers, levels, '-o', color='#08519c', linewidth=2.5, markersize=8, zorder=2)
    axes.set_yticks(range(NUM_LEVELS), [str(4 * 2 ** level) for level in range(NUM_LEVELS)])
    axes.set_xticks(layers, ['stem', *map(str, range(len(path)))])
    axes.set_ylim(NUM_LEVELS - 0.5, -0.5)
    axes.set_xlabel('layer')
    axes.set_ylabel('output stride')
    axes.set_title(title or 'Auto-DeepLab network path')
    axes.grid(alpha=0.2)
    _save_atomically(figure, Path(file))


def draw_genotype(cell: Sequence[Sequence], file: str | Path, title: str | None = None) -> None:
    """The cell DAG: inputs H^{l-2}, H^{l-1} on the left, one node per block,
    arrows labelled with their ops, and the output concatenating all blocks."""
    cell = check_cell([list(entry) for entry in cell])
    blocks = len(cell) // 2
    # (x, y) of every state: the two inputs, then the blocks (alternately
    # above and below the axis), then the output.
    positions = [(0.0, 1.2), (0.0, -1.2)]
    positions += [(2.0 * (block + 1), 0.8 if block % 2 == 0 else -0.8) for block in range(blocks)]
    output = (2.0 * (blocks + 1), 0.0)
    figure, axes = plt.subplots(figsize=(1.9 * blocks + 3.0, 3.8))
    for index, (source, op) in enumerate(cell):
        (x0, y0), (x1, y1) = positions[source], positions[2 + index // 2]
        rad = 0.25 if abs(x1 - x0) > 2.5 and y0 == y1 else 0.0   # bend long level edges
        axes.annotate('', xy=(x1, y1), xytext=(x0, y0), zorder=1,
                      arrowprops=dict(arrowstyle='->', color='#404040', shrinkA=16, shrinkB=16,
                                      connectionstyle=f'arc3,rad={rad}'))
        # The label sits on the edge, nearer the block it feeds.
        t = 0.62
        x, y = x0 + t * (x1 - x0), y0 + t * (y1 - y0) - (0.45 if rad else 0.0)
        axes.text(x, y, op, fontsize=7, ha='center', va='center', color='#08306b', zorder=3,
                  bbox=dict(boxstyle='round,pad=0.15', facecolor='white', edgecolor='none',
                            alpha=0.85))
    for block in range(blocks):
        axes.annotate('', xy=output, xytext=positions[2 + block], zorder=0,
                      arrowprops=dict(arrowstyle='->', color='#fd8d3c', linestyle='dashed',
                                      shrinkA=16, shrinkB=18))
    labels = ['H(l-2)', 'H(l-1)', *(f'block {b}' for b in range(blocks))]
    colours = [_COLOURS['input']] * 2 + [_COLOURS['block']] * blocks
    for (x, y), label, colour in zip(positions, labels, colours):
        axes.text(x, y, label, ha='center', va='center', fontsize=8, zorder=4,
                  bbox=dict(boxstyle='round,pad=0.4', facecolor=colour, edgecolor='#404040'))
    axes.text(*output, 'concat\nH(l)', ha='center', va='center', fontsize=8, zorder=4,
              bbox=dict(boxstyle='round,pad=0.4', facecolor=_COLOURS['output'],
                        edgecolor='#404040'))
    axes.set_xlim(-0.8, output[0] + 0.8)
    axes.set_ylim(-1.9, 1.9)
    axes.axis('off')
    axes.set_title(title or 'Auto-DeepLab cell')
    _save_atomically(figure, Path(file))
