"""Does the search beat chance? Its final pick against N random architectures of its space.

The pick is the ``arch`` of the search's ``best_arch.json`` (both kinds of
search write it). It, the N random architectures (:mod:`random_draws`) and
the source's named references (e.g. FNA's seed network) are all trained with
the same standalone recipe and seed; :func:`summarize` then places the pick
among the random ones (:func:`~nas_tasks.diagnostics.statistics.pick_against_random`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from nas_tasks.diagnostics.random_draws import draw_distinct
from nas_tasks.diagnostics.recipes import RandomArchitectures
from nas_tasks.diagnostics.selection import Candidate
from nas_tasks.diagnostics.statistics import bootstrap_indices, percentile_among, pick_against_random
from nas_tasks.errors import NasError
from nas_tasks.space import load_arch
from nas_tasks.workdir import BEST_ARCH_NAME

MIN_RANDOM = 3  # fewer random architectures say nothing about where the pick stands


@dataclass
class RandomBaseline:
    """What the random baseline trains: the pick, the named references, the random ones."""

    pick: Candidate
    references: dict[str, Candidate]
    randoms: list[Candidate]

    def candidates(self) -> list[Candidate]:
        return [self.pick, *self.references.values(), *self.randoms]


def read_pick(work_dir: Path, space, score_name: str, canonical: Callable[[dict], str]) -> Candidate:
    """The search's final pick (``best_arch.json``), with its search score where it has one."""
    path = Path(work_dir) / BEST_ARCH_NAME
    if not path.is_file():
        raise NasError(f'{path} not found: the random baseline compares the search\'s final pick '
                       'with random architectures; diagnose a finished search (it writes '
                       f'{BEST_ARCH_NAME})')
    document = load_arch(path)
    if space is not None:
        arch = space.from_document(document)
    elif isinstance(document.get('arch'), dict):
        arch = dict(document['arch'])
    else:
        raise NasError(f"{path} holds no 'arch' object; is it a search's {BEST_ARCH_NAME}?")
    metrics = document.get('metrics') or {}
    score = metrics.get(score_name, metrics.get('score'))
    score = float(score) if isinstance(score, (int, float)) and math.isfinite(score) else None
    return Candidate(canonical(arch), arch, score)


def plan_random_baseline(pick: Candidate, source: RandomArchitectures, count: int, seed: int,
                         canonical: Callable[[dict], str]) -> RandomBaseline:
    references = {name: Candidate(canonical(arch), dict(arch), None)
                  for name, arch in (source.references() or {}).items()}
    randoms = [Candidate(canonical(arch), arch, None)
               for arch in draw_distinct(source, count, seed, canonical)]
    return RandomBaseline(pick, references, randoms)


def _row(name: str, candidate: Candidate, record: dict) -> dict:
    row = dict(name=name, id=candidate.id, arch=candidate.arch, status=record['status'],
               standalone_score=record['score'] if record['status'] == 'ok' else None,
               standalone_metrics=record.get('metrics', {}))
    if record['status'] != 'ok':
        row['error'] = record.get('error')
    return row


def summarize(baseline: RandomBaseline, records: dict[str, dict], bootstrap_samples: int,
              confidence: float, seed: int, records_dir: Path,
              pick_repeats: dict[int, dict] | None = None) -> dict:
    """The ``random_baseline`` section of the report, from each trained arch's record (by id).

    ``pick_repeats``: the pick's records under other seeds (``diagnose.pick_seeds``),
    by seed. The pick is then placed by the lowest of its successful trainings'
    scores, so its own training's luck cannot make it beat chance.

    Failed trainings are listed and left out of the statistics. The pick's
    percentile and its score minus the random median come with bootstrap
    intervals over the random architectures; the pick beat chance on this run
    when the percentile's interval lies above 50 (the median excluded).
    """
    pick_record = records[baseline.pick.id]
    if pick_record['status'] != 'ok':
        error = pick_record.get('error') or {}
        raise NasError(f"the pick's standalone training failed ({error.get('type')}: "
                       f"{error.get('message')}); see {records_dir} (rerun with --retry-failed once fixed)")
    pick = dict(_row('pick', baseline.pick, pick_record), search_score=baseline.pick.search_score)
    if pick_repeats:
        seed_scores = {seed: pick_record['score'],
                       **{other: record['score'] for other, record in pick_repeats.items()
                          if record['status'] == 'ok'}}
        pick.update(seed_scores=seed_scores, standalone_score=min(seed_scores.values()),
                    failed_seeds=sorted(other for other, record in pick_repeats.items()
                                        if record['status'] != 'ok'))
    rows = [_row(f'r{index + 1}', candidate, records[candidate.id])
            for index, candidate in enumerate(baseline.randoms)]
    scored = [row for row in rows if row['status'] == 'ok']
    if len(scored) < MIN_RANDOM:
        raise NasError(f'{len(scored)} of {len(rows)} random architectures trained successfully; '
                       f'the random baseline needs {MIN_RANDOM}. See the errors in {records_dir} '
                       '(rerun with --retry-failed once fixed)')
    scores = [row['standalone_score'] for row in scored]
    indices = bootstrap_indices(len(scores), bootstrap_samples, seed)
    standing = pick_against_random(pick['standalone_score'], scores, indices, confidence)
    best = scored[int(np.argmax(scores))]
    references = {}
    for name, candidate in baseline.references.items():
        reference = _row(name, candidate, records[candidate.id])
        if reference['status'] == 'ok':
            reference['percentile'] = percentile_among(reference['standalone_score'], scores)
        references[name] = reference
    low, high = standing['percentile']['ci'] or (math.nan, math.nan)
    return dict(num_random=len(rows), scored=len(scored), failed=len(rows) - len(scored),
                pick=pick, random=rows, references=references, **standing,
                best_random=dict(name=best['name'], id=best['id'],
                                 standalone_score=best['standalone_score'],
                                 pick_beats_it=pick['standalone_score'] > best['standalone_score']),
                beat_chance=bool(low > 50), worse_than_chance=bool(high < 50))
