"""The scatter plot of a diagnosis: search score against standalone score, candidates named."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from nas_tasks.plots import _save_atomically  # also selects matplotlib's Agg backend


def _agreement_title(agreement: dict) -> str:
    parts = []
    for key, symbol in (('kendall_tau', 'τ'), ('spearman_rho', 'ρ')):
        entry = agreement[key]
        if entry['value'] is None:
            parts.append(f'{symbol} n/a')
            continue
        ci = entry['ci']
        interval = f' [{ci[0]:+.2f}, {ci[1]:+.2f}]' if ci else ''
        parts.append(f"{symbol} = {entry['value']:+.2f}{interval}")
    return ', '.join(parts)


def _panel(axes, xs, ys, names, xlabel: str, ylabel: str, title: str) -> None:
    axes.scatter(xs, ys, s=28, zorder=3)
    for x, y, name in zip(xs, ys, names):
        axes.annotate(name, (x, y), xytext=(4, 3), textcoords='offset points', fontsize=8)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title, fontsize=9)
    axes.grid(alpha=0.3)


def plot_diagnosis(report: dict, path: Path) -> None:
    """One panel of search score against standalone score, and one per ablation
    (its score against the standalone score); rank agreement with its
    confidence interval in each title."""
    rows = [c for c in report['candidates'] if c['standalone_score'] is not None]
    names = [c['name'] for c in rows]
    standalone = [c['standalone_score'] for c in rows]
    score_name, standalone_name = report['search']['score_name'], report['settings']['standalone_score_name']
    panels = [("search's score", [c['search_score'] for c in rows], report['agreement'])]
    for name, ablation in report['ablations'].items():
        pairs = [(c['ablations'].get(name), c['name']) for c in rows]
        panels.append((ablation['description'], [score for score, _ in pairs], ablation['agreement']))
    figure, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.4), squeeze=False)
    for axis, (label, xs, agreement) in zip(axes[0], panels):
        kept = [(x, y, n) for x, y, n in zip(xs, standalone, names) if x is not None]
        _panel(axis, *zip(*kept) if kept else ([], [], []), xlabel=f'{score_name}, {label}',
               ylabel=f'{standalone_name}, standalone', title=_agreement_title(agreement))
    level = f"{report['settings']['confidence']:.0%}"
    figure.suptitle(f"{len(rows)} candidates: search vs standalone ranking ({level} bootstrap CIs)",
                    fontsize=10)
    _save_atomically(figure, Path(path))


def plot_random_baseline(report: dict, path: Path) -> None:
    """The random baseline on one axis: each random architecture's standalone score (dots,
    named), their median (a dashed line), the references (diamonds) and the pick (a star),
    the pick's percentile with its interval in the title."""
    baseline = report['random_baseline']
    rows = [row for row in baseline['random'] if row['standalone_score'] is not None]
    figure, axis = plt.subplots(figsize=(7.5, 2.8))
    scores = [row['standalone_score'] for row in rows]
    axis.scatter(scores, [0.0] * len(scores), s=28, color='tab:gray', label='random', zorder=3)
    for score, row in zip(scores, rows):
        axis.annotate(row['name'], (score, 0.0), xytext=(0, 6), textcoords='offset points',
                      fontsize=7, ha='center')
    axis.axvline(baseline['minus_median']['median'], color='tab:gray', linestyle='--', linewidth=1,
                 label='random median')
    for name, reference in baseline['references'].items():
        if reference['standalone_score'] is not None:
            axis.scatter([reference['standalone_score']], [0.0], marker='D', s=50, zorder=4,
                         label=f'reference {name}')
    axis.scatter([baseline['pick']['standalone_score']], [0.0], marker='*', s=220, color='tab:red',
                 zorder=5, label="search's pick")
    axis.set_yticks([])
    axis.set_xlabel(f"{report['settings']['standalone_score_name']}, standalone")
    percentile = baseline['percentile']
    ci = percentile['ci']
    interval = f' [{ci[0]:.0f}%, {ci[1]:.0f}%]' if ci else ''
    level = f"{report['settings']['confidence']:.0%}"
    axis.set_title(f"the pick above {percentile['value']:.0f}%{interval} of {baseline['scored']} random "
                   f'architectures ({level} bootstrap CI)', fontsize=9)
    axis.legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.01, 1.0))
    axis.grid(alpha=0.3, axis='x')
    figure.tight_layout()
    _save_atomically(figure, Path(path))
