"""Pictures of an Auto-DeepLab architecture: the network path and the cell DAG.

matplotlib only (Agg); PNG files are written atomically like the search plots.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from nas_tasks.plots import SAVE_DPI, _save_atomically  # also selects the Agg backend

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
    """The cell DAG: inputs H(l-2), H(l-1) on the left, one node per block, and
    the output concatenating all blocks. Each of a block's two inputs passes
    through a box naming its op, just left of the block (the higher source to
    the upper box), so no two op names share a place; lines that would run
    through a box are bent around it."""
    figure, boxes, edges = genotype_figure(cell, title)
    figure.canvas.draw()  # the boxes' sizes on the page, for routing the lines
    renderer = figure.canvas.get_renderer()
    extents = [box.get_bbox_patch().get_window_extent(renderer) for box in boxes]
    axes = figure.axes[0]
    for start, end, style in edges:
        rad = _route(extents, start, end)
        axes.annotate('', xy=(0.5, 0.5), xytext=(0.5, 0.5), zorder=1, arrowprops=dict(
            **style, patchA=boxes[start].get_bbox_patch(), patchB=boxes[end].get_bbox_patch(),
            shrinkA=2, shrinkB=4, mutation_scale=12, connectionstyle=f'arc3,rad={rad}'),
            xycoords=boxes[end], textcoords=boxes[start])
    _save_atomically(figure, Path(file), tight=False)


_EDGE = dict(arrowstyle='-', color='#404040', lw=1.1)
_INTO_BLOCK = dict(arrowstyle='->', color='#404040', lw=1.1)
_TO_OUTPUT = dict(arrowstyle='->', color='#fd8d3c', linestyle='dashed', lw=1.1)


def genotype_figure(cell: Sequence[Sequence], title: str | None = None):
    """The figure of :func:`draw_genotype` before its lines are drawn: (figure, the
    text boxes: inputs, blocks, ops, output; the lines as (from box, to box, style))."""
    cell = check_cell([list(entry) for entry in cell])
    blocks = len(cell) // 2
    step = 2.6  # between blocks; the op boxes sit in the gap
    node_xy = [(0.0, 1.2), (0.0, -1.2)]
    node_xy += [(step * (block + 1), 0.8 if block % 2 == 0 else -0.8) for block in range(blocks)]
    output_xy = (step * (blocks + 1), 0.0)
    # At the dpi it is saved with, and without a tight bounding box: the arrows end at
    # the boxes' edges as the previous draw placed them, which must be where they are.
    figure, axes = plt.subplots(figsize=(1.5 * blocks + 2.4, 3.8), dpi=SAVE_DPI)
    figure.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.92)
    axes.set_xlim(-0.7, output_xy[0] + 0.7)
    axes.set_ylim(-2.0, 2.0)
    axes.axis('off')
    axes.set_title(title or 'Auto-DeepLab cell')
    names = ['H(l-2)', 'H(l-1)', *(f'block {b}' for b in range(blocks))]
    colours = [_COLOURS['input']] * 2 + [_COLOURS['block']] * blocks
    boxes = [axes.text(x, y, name, ha='center', va='center', fontsize=8, zorder=4,
                       bbox=dict(boxstyle='round,pad=0.4', facecolor=colour, edgecolor='#404040'))
             for (x, y), name, colour in zip(node_xy, names, colours)]
    edges = []
    for block in range(blocks):
        inputs = cell[2 * block:2 * block + 2]
        x, y = node_xy[2 + block]
        # The higher source feeds the upper op box (on ties, the earlier input).
        ordered = sorted(inputs, key=lambda entry: -node_xy[entry[0]][1])
        for slot, (source, op) in zip((0.32, -0.32), ordered):
            boxes.append(axes.text(x - 1.15, y + slot, op, ha='center', va='center', fontsize=7,
                                   color='#08306b', zorder=4,
                                   bbox=dict(boxstyle='round,pad=0.2', facecolor='white',
                                             edgecolor='#9ecae1')))
            edges.append((source, len(boxes) - 1, _EDGE))
            edges.append((len(boxes) - 1, 2 + block, _INTO_BLOCK))
    boxes.append(axes.text(*output_xy, 'concat\nH(l)', ha='center', va='center', fontsize=8,
                           zorder=4, bbox=dict(boxstyle='round,pad=0.4',
                                               facecolor=_COLOURS['output'], edgecolor='#404040')))
    edges += [(2 + block, len(boxes) - 1, _TO_OUTPUT) for block in range(blocks)]
    return figure, boxes, edges


def _route(extents, start: int, end: int) -> float:
    """The bend (matplotlib's arc3 rad) of the line from box ``start`` to box ``end``
    (their extents on the page) that runs through the fewest other boxes: straight
    when it passes clear, else the least bend that does."""
    a = np.array(extents[start].get_points().mean(0))
    b = np.array(extents[end].get_points().mean(0))
    others = [extent.padded(4) for index, extent in enumerate(extents)
              if index not in (start, end)]
    (dx, dy), best = b - a, (None, 0.0)
    for rad in (0.0, 0.12, -0.12, 0.22, -0.22, 0.32, -0.32, 0.45, -0.45):
        control = (a + b) / 2 + rad * np.array([dy, -dx])  # as arc3 places it, in pixels
        t = np.linspace(0.05, 0.95, 60)[:, None]
        points = (1 - t) ** 2 * a + 2 * t * (1 - t) * control + t ** 2 * b
        hits = sum(extent.count_contains(points) > 0 for extent in others)
        if hits == 0:
            return rad
        if best[0] is None or hits < best[0]:
            best = (hits, rad)
    return best[1]

