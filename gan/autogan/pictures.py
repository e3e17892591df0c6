"""Pictures of a found generator: a grid of its samples and a diagram of its cells."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use('Agg')  # no display on servers and CI

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402
from PIL import Image  # noqa: E402
from torchvision.utils import make_grid  # noqa: E402

from gan.autogan.space import AutoGANSpace, CellArch  # noqa: E402
from gan.metrics import quantise  # noqa: E402
from nas_tasks.io import atomic_write  # noqa: E402
from nas_tasks.space import Arch  # noqa: E402


def save_sample_grid(images: torch.Tensor, path: str | Path, rows: int = 8) -> None:
    """``images`` (N x 3 x H x W in [-1, 1]) as one PNG, ``rows`` images a row,
    quantised as the metrics see them."""
    grid = make_grid(quantise(images.detach().cpu()), nrow=rows, padding=2, pad_value=255)
    picture = Image.fromarray(grid.permute(1, 2, 0).numpy())
    atomic_write(path, lambda f: picture.save(f, format='PNG'))


def _cell_label(index: int, cell: CellArch) -> str:
    norm = cell.norm or 'no norm'
    shortcut = 'shortcut' if cell.shortcut else 'no shortcut'
    return f'cell {index}\n{cell.conv}-activation\n{norm}, {cell.up}\n{shortcut}'


def draw_generator(arch: Arch, path: str | Path, title: str | None = None) -> None:
    """The cells of ``arch`` from noise to image, with each cell's decisions and
    its skip inputs drawn as arcs from the earlier cells."""
    cells = AutoGANSpace().cells(arch)
    names = ['z\nlinear 4x4'] + [_cell_label(i, c) for i, c in enumerate(cells, 1)] + ['to RGB\ntanh']
    figure, axes = plt.subplots(figsize=(2.1 * len(names), 3.2))
    width, height = 1.5, 1.3
    for i, name in enumerate(names):
        axes.add_patch(FancyBboxPatch((2 * i - width / 2, -height / 2), width, height,
                                      boxstyle='round,pad=0.05', fc='#e8eef7', ec='#34495e'))
        axes.text(2 * i, 0, name, ha='center', va='center', fontsize=8)
        if i:
            axes.annotate('', (2 * i - width / 2 - 0.05, 0), (2 * (i - 1) + width / 2 + 0.05, 0),
                          arrowprops=dict(arrowstyle='->', color='#34495e'))
    for index, cell in enumerate(cells, 1):
        for source in cell.skip_from:
            # From the top of the source cell to the top of this one, arched by distance.
            axes.add_patch(FancyArrowPatch((2 * source, height / 2 + 0.05), (2 * index, height / 2 + 0.05),
                                           connectionstyle=f'arc3,rad=-{0.25 + 0.1 * (index - source)}',
                                           arrowstyle='-|>', mutation_scale=12, color='tab:orange', lw=1.5))
    axes.text(0, -height / 2 - 0.35, 'orange: skip connections', fontsize=7, color='tab:orange')
    axes.set_xlim(-1, 2 * len(names) - 1)
    axes.set_ylim(-height / 2 - 0.6, height / 2 + 1.5)
    axes.axis('off')
    if title:
        axes.set_title(title, fontsize=9)
    try:
        atomic_write(path, lambda f: figure.savefig(f, format='png', dpi=110, bbox_inches='tight'))
    finally:
        plt.close(figure)
