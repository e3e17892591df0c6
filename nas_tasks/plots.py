"""PNG plots of a search, written atomically."""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def _save_atomically(figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.png')
    os.close(fd)
    try:
        figure.savefig(tmp, dpi=110, bbox_inches='tight')
        os.replace(tmp, path)
    finally:
        plt.close(figure)
        if os.path.exists(tmp):
            os.unlink(tmp)


def plot_score_per_round(history: list[dict], path: Path, score_name: str = 'score') -> None:
    """Best-so-far, round best and round mean score per round."""
    rounds = sorted({record['round'] for record in history})
    round_scores = [[r['score'] for r in history if r['round'] == k] for k in rounds]
    round_best = [max(scores) for scores in round_scores]
    round_mean = [sum(scores) / len(scores) for scores in round_scores]
    best_so_far = [max(round_best[:i + 1]) for i in range(len(round_best))]
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot(rounds, best_so_far, 'o-', label='best so far')
    axes.plot(rounds, round_best, 's--', label='best in round')
    axes.plot(rounds, round_mean, '^:', label='mean in round')
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
    points = [(r['costs'][cost], r['score'], r['round']) for r in history if cost in r.get('costs', {})]
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
                            score_name: str = 'reward') -> None:
    """Reward per controller step: the batch mean, the batch best and the baseline.

    ``history`` holds ``(step, mean reward, best reward, baseline)`` entries,
    as ``ReinforceController.history``; a missing baseline or a step without a
    usable reward (NaN) leaves a gap.
    """
    steps = [entry[0] for entry in history]
    mean, best, baseline = ([_number(entry[i]) for entry in history] for i in (1, 2, 3))
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot(steps, best, 's--', label='best in batch')
    axes.plot(steps, mean, 'o-', label='mean of batch')
    axes.plot(steps, baseline, '-', color='0.4', label='baseline')
    axes.set_xlabel('controller step')
    axes.set_ylabel(score_name)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    axes.legend()
    _save_atomically(figure, Path(path))


def _number(value) -> float:
    return math.nan if value is None else float(value)
