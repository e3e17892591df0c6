"""PNG plots of a search, written atomically."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import matplotlib
import numpy as np

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from nas_tasks.io import atomic_write  # noqa: E402


SAVE_DPI = 110


def _save_atomically(figure, path: Path, tight: bool = True) -> None:
    try:
        atomic_write(path, lambda f: figure.savefig(f, format='png', dpi=SAVE_DPI,
                                                     bbox_inches='tight' if tight else None))
    finally:
        plt.close(figure)


def plot_score_per_round(history: list[dict], path: Path, score_name: str = 'score',
                         marks: Sequence[tuple[str, float]] = ()) -> None:
    """Best-so-far, round best and round mean score per round; ``marks``
    (label, round) as vertical lines.

    Failed candidates (non-finite scores) are left out, as they rank below
    every finite score; a round in which all failed leaves a gap.
    """
    by_round: dict[int, list[float]] = {}  # one pass: a 2,000-round search plots in linear time
    for record in history:
        scores = by_round.setdefault(record['round'], [])
        if _finite(record['score']):
            scores.append(record['score'])
    rounds = sorted(by_round)
    round_scores = [by_round[k] for k in rounds]
    round_best = [max(scores, default=math.nan) for scores in round_scores]
    round_mean = [sum(scores) / len(scores) if scores else math.nan for scores in round_scores]
    best_so_far = list(np.fmax.accumulate(np.array(round_best, dtype=float)))
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot(rounds, best_so_far, 'o-', label='best so far')
    axes.plot(rounds, round_best, 's--', label='best in round')
    axes.plot(rounds, round_mean, '^:', label='mean in round')
    _draw_marks(axes, marks)
    axes.set_xlabel('round')
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel(score_name)
    axes.grid(alpha=0.3)
    axes.legend()
    _save_atomically(figure, path)


def plot_score_against_cost(history: list[dict], cost: str, path: Path, score_name: str = 'score') -> bool:
    """Scatter of score against one cost (e.g. flops), coloured by round.

    Returns False (and writes nothing) when no candidate reports that cost.
    """
    points = [(r['costs'][cost], r['score'], r['round']) for r in history
              if cost in r.get('costs', {}) and _finite(r['score'])]
    if not points:
        return False
    xs, ys, rounds = zip(*points)
    figure, axes = plt.subplots(figsize=(6, 4))
    scatter = axes.scatter(xs, ys, c=rounds, cmap='viridis', s=18)
    colorbar = figure.colorbar(scatter, ax=axes, label='round')
    colorbar.locator = MaxNLocator(integer=True)
    colorbar.update_ticks()
    axes.set_xlabel(cost)
    axes.set_ylabel(score_name)
    axes.grid(alpha=0.3)
    _save_atomically(figure, path)
    return True


def plot_controller_rewards(history: Sequence[Sequence], path: str | Path,
                            score_name: str = 'reward', marks: Sequence[tuple[str, Any]] = ()) -> None:
    """Reward per controller step: the batch mean, the batch best and the baseline.

    ``history`` holds ``(step, mean reward, best reward, baseline)`` entries,
    as ``ReinforceController.history``; a missing baseline or a step without a
    usable reward (NaN) leaves a gap. ``marks`` are (label, position) pairs
    drawn as vertical lines at each position's ``step``.
    """
    figure, axes = plt.subplots(figsize=(6, 4))
    _draw_rewards(axes, history)
    _draw_marks(axes, [(label, position.step - 0.5) for label, position in marks
                       if position.step is not None])
    axes.set_xlabel('controller step')
    axes.set_ylabel(score_name)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    axes.legend()
    _save_atomically(figure, Path(path))


def plot_staged_controller_rewards(histories: Sequence[Sequence[Sequence]], path: str | Path,
                                   score_name: str = 'reward',
                                   marks: Sequence[tuple[str, Any]] = ()) -> None:
    """Reward per controller step of a staged search (one controller per
    stage), on one step axis across the stages, a dotted line where a stage
    begins. ``histories`` holds one ``ReinforceController.history`` per stage
    (see :func:`plot_controller_rewards` for its entries); NaNs leave gaps.
    ``marks`` are (label, position) pairs, drawn at the position's stage and step."""
    figure, axes = plt.subplots(figsize=(7, 4))
    offsets = np.cumsum([0] + [len(history) for history in histories])
    _draw_marks(axes, [(label, offsets[p.stage] + p.step - 0.5) for label, p in marks
                       if p.step is not None and p.stage < len(histories)])
    offset = 0
    for stage, history in enumerate(histories):
        _draw_rewards(axes, history, offset, labelled=stage == 0)  # one legend entry per line kind
        if stage:
            axes.axvline(offset - 0.5, color='k', ls=':', lw=1)
        axes.annotate(f'stage {stage}', (offset, 1.0), xycoords=('data', 'axes fraction'),
                      xytext=(2, -10), textcoords='offset points', fontsize=8)
        offset += len(history)
    axes.set_xlabel('controller step (all stages)')
    axes.set_ylabel(score_name)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    axes.legend(loc='best')
    _save_atomically(figure, Path(path))


def _draw_rewards(axes, history: Sequence[Sequence], offset: int = 0, labelled: bool = True) -> None:
    """The batch best, batch mean and baseline of a controller history, steps shifted by ``offset``."""
    steps = [offset + entry[0] for entry in history]
    mean, best, baseline = ([_number(entry[i]) for entry in history] for i in (1, 2, 3))
    axes.plot(steps, best, 's--', color='C0', label='best in batch' if labelled else None)
    axes.plot(steps, mean, 'o-', color='C1', label='mean of batch' if labelled else None)
    axes.plot(steps, baseline, '-', color='0.4', label='baseline' if labelled else None)


def _draw_marks(axes, marks: Sequence[tuple[str, float]]) -> None:
    """A red dashed vertical line at each (label, x); one legend entry per label."""
    labelled = set()
    for label, x in marks:
        axes.axvline(x, color='tab:red', ls='--', lw=1, label=None if label in labelled else label)
        labelled.add(label)


def _finite(score) -> bool:
    return score is not None and math.isfinite(score)


def _number(value) -> float:
    return math.nan if value is None else float(value)


def plot_arch_weights(history: Sequence[dict], path_dir: str | Path,
                      op_names: dict[str, Sequence[str]] | None = None,
                      row_names: dict[str, Sequence[str]] | None = None) -> list[Path]:
    """How a differentiable search's architecture weights evolve: one PNG per group.

    ``history`` holds per-epoch records with ``epoch`` (0-based) and
    ``arch_weights`` (``{group: nested list [..., ops]}``, normalised over the
    last dimension), as ``DifferentiableTrainer.history``. Leading dimensions
    are flattened into rows (an edge of a cell, a (layer, level) node of a
    trellis). ``arch_<group>.png`` shows one small panel per row with one line
    per op over the epochs, and beside them a heatmap of the last record's
    weights. ``op_names`` labels the ops of a group (default ``op 0``, ...),
    ``row_names`` its rows in flattened order (default their index). Rows that
    are zero in every record (no choice there, such as Auto-DeepLab's beta
    where a layer has no node at a level) are left out. Returns the paths
    written (none for an empty history).
    """
    records = [r for r in history if r.get('arch_weights')]
    if not records:
        return []
    epochs = [r['epoch'] + 1 for r in records]
    written = []
    for name in records[-1]['arch_weights']:
        series = np.array([r['arch_weights'][name] for r in records if name in r['arch_weights']],
                          dtype=float)
        shape = series.shape[1:]
        rows = series.reshape(len(series), -1, shape[-1])  # [records, rows, ops]
        labels = list((row_names or {}).get(name) or [
            str(index[0]) if len(index) == 1 else str(index)
            for index in np.ndindex(*shape[:-1])] or [''])
        ops = list((op_names or {}).get(name) or [f'op {k}' for k in range(shape[-1])])
        if len(labels) != rows.shape[1] or len(ops) != rows.shape[2]:
            raise ValueError(f'arch weights {name!r} have {rows.shape[1]} rows of {rows.shape[2]} '
                             f'ops, but {len(labels)} row names and {len(ops)} op names')
        used = np.any(rows != 0, axis=(0, 2))
        if used.any() and not used.all():
            rows = rows[:, used]
            labels = [label for label, keep in zip(labels, used) if keep]
        path = Path(path_dir) / f'arch_{name}.png'
        _plot_arch_group(name, epochs[-len(series):], rows, labels, ops, path)
        written.append(path)
    return written


def distinct_ticks(low: float, high: float, nbins: int = 5) -> tuple[list[float], list[str]]:
    """Tick positions in [low, high] and labels with as few decimals as keep them apart
    (a colour bar of weights 0.10-0.13 gets 0.10, 0.11, ..., not 0.1, 0.1, ...)."""
    if not high > low:
        return [low], [f'{low:.2g}']
    ticks = [float(t) for t in MaxNLocator(nbins=nbins).tick_values(low, high)
             if low - 1e-12 <= t <= high + 1e-12]
    for decimals in range(1, 8):
        labels = [f'{t:.{decimals}f}' for t in ticks]
        if len(set(labels)) == len(labels):
            return ticks, labels
    return ticks, [f'{t:.3g}' for t in ticks]


def arch_weights_figure(name: str, epochs: list[int], rows: np.ndarray, labels: list[str],
                        ops: list[str]):
    """The figure of one group of architecture weights (see :func:`plot_arch_weights`):
    a panel per row with a line per op over the epochs, and a heat map of the last
    record, its rows and ops named and its colour bar's ticks distinct."""
    count, num_ops = rows.shape[1], rows.shape[2]
    cols = math.ceil(math.sqrt(count))
    grid_rows = math.ceil(count / cols)
    # Inches: the heat map's row names left of it, its op names below, its colour bar right.
    label_width = 0.3 + 0.055 * max(map(len, labels))
    op_height = 0.3 + 0.055 * max(map(len, ops))
    heat_width = 0.8 + 0.3 * num_ops
    panels_width = 2.2 * cols
    height = max(1.7 * grid_rows + 1.0, 0.2 * count + 1.0 + op_height)
    width = 0.5 + panels_width + label_width + heat_width + 0.9
    figure = plt.figure(figsize=(width, height))
    outer = figure.add_gridspec(1, 2, width_ratios=[panels_width, heat_width],
                                wspace=label_width / ((panels_width + heat_width) / 2),
                                top=1 - 0.7 / height, bottom=op_height / height,
                                left=0.5 / width, right=1 - 0.9 / width)
    panels = outer[0].subgridspec(grid_rows, cols, hspace=0.6, wspace=0.3)
    colors = plt.get_cmap('tab10' if num_ops <= 10 else 'tab20')
    first = None
    for row in range(count):
        axes = figure.add_subplot(panels[row // cols, row % cols], sharex=first, sharey=first)
        first = first or axes
        for op in range(num_ops):
            axes.plot(epochs, rows[:, row, op], '.-', color=colors(op % colors.N), lw=1, ms=3,
                      label=ops[op])
        axes.set_title(labels[row], fontsize=7)
        axes.tick_params(labelsize=6)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=4))
        axes.grid(alpha=0.3)
        # Tick labels only on the left column and on the lowest panel of each column.
        axes.tick_params(labelleft=row % cols == 0, labelbottom=row + cols >= count)
        if row + cols >= count:
            axes.set_xlabel('epoch', fontsize=7)
    first.set_ylim(0, 1)
    handles, names = first.get_legend_handles_labels()
    figure.legend(handles, names, loc='upper center', ncol=min(num_ops, 8), fontsize=7,
                  title=f'{name}: weight of each choice', title_fontsize=7)
    heat = figure.add_subplot(outer[1])
    top = max(float(rows[-1].max()), 1e-9)
    image = heat.imshow(rows[-1], aspect='auto', cmap='viridis', vmin=0, vmax=top)
    heat.set_title(f'{name} after epoch {epochs[-1]}', fontsize=8)
    heat.set_xticks(range(num_ops), ops, rotation=90, fontsize=6)
    heat.set_yticks(range(count), labels, fontsize=6)
    colorbar = figure.colorbar(image, ax=heat, fraction=0.12, pad=0.04, shrink=0.6)
    ticks, tick_labels = distinct_ticks(0.0, top)
    colorbar.set_ticks(ticks, labels=tick_labels)
    colorbar.ax.tick_params(labelsize=6)
    colorbar.set_label('weight', fontsize=7)
    return figure


def _plot_arch_group(name: str, epochs: list[int], rows: np.ndarray, labels: list[str],
                     ops: list[str], path: Path) -> None:
    figure = arch_weights_figure(name, epochs, rows, labels, ops)
    # The grid sets the margins; a tight bounding box would cost seconds for ~50 panels.
    _save_atomically(figure, path, tight=False)
