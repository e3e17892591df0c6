"""Agreement of two rankings of the same candidates, with bootstrap intervals.

Kendall's tau-b and Spearman's rho come from ``scipy.stats``. Their
confidence intervals are percentile bootstraps over the candidates: each
resample draws K candidates with replacement and keeps the pairs (search
score, standalone score) together. A resample in which either ranking is all
ties has no correlation and is left out (counted in ``degenerate``). Every
random draw comes from one seeded generator, so a report is reproducible.

Thousands of resamples go through :func:`kendall_tau_rows` and
:func:`spearman_rho_rows`, which compute the same two statistics as scipy
for every resample at once (scipy's functions take one pair of lists per
call, about a millisecond each); the tests check them against scipy.
"""
from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np
from scipy import stats

Ranking = Sequence[float]


def kendall_tau(x: Ranking, y: Ranking) -> float:
    """Kendall's tau-b (ties counted as scipy does); NaN when either side is all ties."""
    if _constant(x) or _constant(y):
        return math.nan
    return float(stats.kendalltau(x, y).statistic)


def spearman_rho(x: Ranking, y: Ranking) -> float:
    """Spearman's rho; NaN when either side is all ties."""
    if _constant(x) or _constant(y):
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return float(stats.spearmanr(x, y).statistic)


def _constant(values: Ranking) -> bool:
    return len(set(values)) < 2


def kendall_tau_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of each row pair of ``x`` and ``y`` (shape [rows, K]); NaN
    for a row where either side is all ties.

    tau-b = sum over pairs of sign(dx) sign(dy) / sqrt(untied pairs in x * untied in y),
    the definition scipy computes.
    """
    dx = np.sign(x[:, :, None] - x[:, None, :])
    dy = np.sign(y[:, :, None] - y[:, None, :])
    # Each unordered pair appears twice in the K x K differences: the factor cancels.
    concordance = (dx * dy).sum(axis=(1, 2))
    with np.errstate(invalid='ignore', divide='ignore'):
        return concordance / np.sqrt(np.abs(dx).sum(axis=(1, 2)) * np.abs(dy).sum(axis=(1, 2)))


def spearman_rho_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row pair (Pearson's r of the average ranks, as scipy); NaN
    for a row where either side is all ties."""
    rx = stats.rankdata(x, axis=1)
    ry = stats.rankdata(y, axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    with np.errstate(invalid='ignore', divide='ignore'):
        return (rx * ry).sum(axis=1) / np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))


def bootstrap_indices(count: int, samples: int, seed: int) -> np.ndarray:
    """``samples`` resamples of ``count`` candidate indices, drawn with replacement."""
    return np.random.default_rng(seed).integers(0, count, size=(samples, count))


def percentile_interval(values: np.ndarray, confidence: float) -> list[float] | None:
    """The central ``confidence`` interval of the finite ``values``; None if there are none."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return [float(low), float(high)]


def _spread(values: np.ndarray, confidence: float) -> dict:
    """The bootstrap interval of ``values`` (one per resample) and how many were undefined."""
    return dict(ci=percentile_interval(values, confidence),
                degenerate=int(np.count_nonzero(~np.isfinite(values))))


def rank_agreement(search: Ranking, standalone: Ranking, indices: np.ndarray,
                   confidence: float = 0.95) -> dict:
    """Kendall's tau and Spearman's rho of two score lists (same candidates, same
    order), each with its p-value (scipy's) and bootstrap interval over ``indices``."""
    x, y = np.asarray(search, dtype=float), np.asarray(standalone, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f'two score lists of one length expected, got {x.shape} and {y.shape}')
    result = {}
    for name, function, rows, test in (('kendall_tau', kendall_tau, kendall_tau_rows, stats.kendalltau),
                                       ('spearman_rho', spearman_rho, spearman_rho_rows, stats.spearmanr)):
        value = function(x, y)
        p_value = math.nan
        if math.isfinite(value):
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                p_value = float(test(x, y).pvalue)
        result[name] = dict(value=value, p_value=p_value,
                            **_spread(rows(x[indices], y[indices]), confidence))
    return result


def tau_difference(search: Ranking, other: Ranking, standalone: Ranking, indices: np.ndarray,
                   confidence: float = 0.95) -> dict:
    """tau(search, standalone) - tau(other, standalone): how much better the search's
    scores rank than ``other`` scores of the same candidates (e.g. without BN
    recalibration), with a paired bootstrap interval (the same resamples for both)."""
    x, z, y = (np.asarray(values, dtype=float) for values in (search, other, standalone))
    differences = kendall_tau_rows(x[indices], y[indices]) - kendall_tau_rows(z[indices], y[indices])
    return dict(value=kendall_tau(x, y) - kendall_tau(z, y), **_spread(differences, confidence))


def ranked_order(scores: Ranking) -> list[int]:
    """Indices from the best score to the worst; equal scores keep their given order."""
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


def ranks(scores: Ranking) -> list[int]:
    """The 1-based rank of each score (1 = best); equal scores by their given order."""
    result = [0] * len(scores)
    for position, index in enumerate(ranked_order(scores)):
        result[index] = position + 1
    return result


def top_k_overlap(search: Ranking, standalone: Ranking, k: int) -> dict:
    """How many of the search's ``k`` best are among the standalone ``k`` best.

    ``chance`` is what two unrelated rankings share on average (k*k/K, the mean
    of a hypergeometric draw), the baseline the overlap is read against.
    """
    count = len(search)
    k = max(1, min(k, count))
    shared = set(ranked_order(search)[:k]) & set(ranked_order(standalone)[:k])
    return dict(k=k, overlap=len(shared), fraction=len(shared) / k, chance=k * k / count)


# -- the search's pick against random architectures ---------------------------------
def percentile_among(value: float, others: Ranking) -> float:
    """Where ``value`` stands among ``others``, in percent: the share of them it beats,
    a tie counting half (above all: 100; below all: 0; equal to all: 50)."""
    others = np.asarray(others, dtype=float)
    if others.size == 0:
        raise ValueError('a percentile among no values')
    return float(_percentiles(value, others[None, :])[0])


def _percentiles(value: float, rows: np.ndarray) -> np.ndarray:
    """:func:`percentile_among` of ``value`` in each row of ``rows`` (shape [rows, N])."""
    beaten = (rows < value).sum(axis=1) + 0.5 * (rows == value).sum(axis=1)
    return 100.0 * beaten / rows.shape[1]


def pick_against_random(pick: float, random_scores: Ranking, indices: np.ndarray,
                        confidence: float = 0.95) -> dict:
    """The pick's standing among the random architectures' scores, with bootstrap
    intervals over ``indices`` (resamples of the random architectures; the pick's
    score is one measurement and stays fixed):

    - ``percentile``: :func:`percentile_among` the random scores;
    - ``minus_median``: the pick's score minus the random scores' median.
    """
    scores = np.asarray(random_scores, dtype=float)
    if scores.ndim != 1 or scores.size == 0:
        raise ValueError(f'a non-empty list of random scores expected, got shape {scores.shape}')
    resampled = scores[indices]
    median = float(np.median(scores))
    return dict(
        percentile=dict(value=percentile_among(pick, scores),
                        ci=percentile_interval(_percentiles(pick, resampled), confidence)),
        minus_median=dict(value=pick - median, median=median,
                          ci=percentile_interval(pick - np.median(resampled, axis=1), confidence)))


def mean_difference(first: Ranking, second: Ranking, indices: np.ndarray,
                    confidence: float = 0.95) -> dict:
    """The mean of ``first - second`` (paired, e.g. two strategies' best scores on the same
    seeds) with a bootstrap interval over ``indices`` (resamples of the pairs)."""
    differences = np.asarray(first, dtype=float) - np.asarray(second, dtype=float)
    return dict(value=float(differences.mean()),
                ci=percentile_interval(differences[indices].mean(axis=1), confidence))
