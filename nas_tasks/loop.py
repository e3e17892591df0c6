"""The search loop: train shared weights, then ask, evaluate, tell, checkpoint.

Every random decision comes from a seeded source owned by a component (the
strategy's RNG, saved in its state dict; the estimator's per-candidate seed),
so a search resumed from its last round checkpoint ends exactly as an
uninterrupted one.

Failure is a result: a candidate whose evaluation raises, or whose score is
not finite, is recorded as failed (with the error's type and message), told
to the strategy as a failure, ranked below every finite score and never
evaluated again on resume (unless ``retry_failed``). The search goes on.
"""
from __future__ import annotations

import logging
import math
import traceback
from pathlib import Path

import torch
from mmengine.logging import MMLogger
from tqdm import tqdm

from nas_tasks import dist
from nas_tasks.errors import NasError
from nas_tasks.estimators.base import Estimator
from nas_tasks.history_text import HistoryText, decode_history
from nas_tasks.io import append_jsonl, atomic_write_json, atomic_write_text, jsonl_line
from nas_tasks.per_entry_cache import PerEntryCache
from nas_tasks.plot_schedule import PlotSchedule
from nas_tasks.plots import plot_score_against_cost, plot_score_per_round
from nas_tasks.report import write_candidates_report
from nas_tasks.result import Result, arch_metrics, flops_convention_entry, ranking_score
from nas_tasks.round_journal import RoundJournal
from nas_tasks.search_logging import SearchLog, round_scalars
from nas_tasks.space import CategoricalSpace
from nas_tasks.strategies.base import Strategy
from nas_tasks.workdir import (BEST_ARCH_NAME, CANDIDATES_NAME, CHECKPOINT_NAME, TOP_CANDIDATES_NAME,
                               SearchWorkDir,
                               check_state_keys)

TOP_COUNT = 10  # whole candidates in top_candidates.json, unless the strategy ranks its own

__all__ = ['SearchLoop', 'BEST_ARCH_NAME', 'CANDIDATES_NAME', 'CHECKPOINT_NAME']

STATE_KEYS = ('space', 'space_version', 'round', 'shared_trained', 'finished', 'strategy', 'history')
# Why every candidate of a round can score the same, for the warning that says so.
TIE_CAUSES = ('an undertrained supernet or proxy training, no detections above the score '
              "threshold (the model's test_cfg score_thr), or a held-out split too small "
              'to tell the candidates apart')


class SearchLoop:
    """Runs a sample-based search and owns its work directory.

    Work directory contents: ``search_state.pth`` (checkpoint after every
    round) and ``search_state.prev.pth`` (the round before), ``candidates.jsonl``
    (one line per evaluated candidate, failures included), ``plots/*.png``
    and, at the end, ``best_arch.json``, ``top_candidates.json`` (the best
    whole candidates, best first) and whatever the estimator exports (e.g.
    the subnet weights).
    """

    def __init__(self, space: CategoricalSpace, strategy: Strategy, estimator: Estimator,
                 work_dir: Path, candidates_per_round: int, score_name: str = 'score',
                 max_rounds: int | None = None, extra_costs=None,
                 search_log: SearchLog | None = None, plot_schedule: PlotSchedule | None = None):
        self.space = space
        self.strategy = strategy
        self.estimator = estimator
        self.work_dir = Path(work_dir)
        self.files = SearchWorkDir(self.work_dir)
        # Each finished candidate of the current round, so that a restart evaluates the rest only.
        self.journal = RoundJournal(self.work_dir, space.canonical)
        self.candidates_per_round = candidates_per_round
        self.logger: logging.Logger = MMLogger.get_instance('nas_tasks')
        self.score_name = score_name
        self.max_rounds = max_rounds
        # Where the per-round scalars go (the config's visualizer backends); nowhere by default.
        self.search_log = search_log or SearchLog()
        # When the plots are redrawn after a round (always at the end).
        self.plot_schedule = plot_schedule or PlotSchedule()
        # arch -> costs the search adds to the estimator's in each record (its cost models').
        self.extra_costs = extra_costs or (lambda arch: {})
        self.history: list[dict] = []
        # The history as the checkpoint stores it: JSON lines, each record encoded once.
        self._history_text = HistoryText()
        # Whether each record is a whole candidate (the strategy judges an arch alone).
        self._is_final = PerEntryCache(lambda record: self.strategy.is_final(record['arch']))
        self._estimator_state: dict | None = None
        # --retry-failed: the journal's failures of the interrupted round are evaluated again too.
        self._retry_journaled_failures = False
        self.round = 0
        self.shared_trained = False
        self.finished = False

    # -- state ---------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.files.checkpoint_path

    def state_dict(self) -> dict:
        return dict(space=self.space.name, space_version=self.space.version, round=self.round,
                    shared_trained=self.shared_trained, finished=self.finished,
                    strategy=self.strategy.state_dict(), estimator=self.estimator.state_dict(),
                    history=self._history_text.encode(self.history))

    def load_state_dict(self, state: dict) -> None:
        check_state_keys(state, STATE_KEYS, self.checkpoint_path)
        if (state['space'], state['space_version']) != (self.space.name, self.space.version):
            raise NasError(
                f"checkpoint {self.checkpoint_path} is for search space '{state['space']}' "
                f"v{state['space_version']}, but the config's space is '{self.space.name}' "
                f'v{self.space.version}; use another --work-dir or the matching config')
        self.round = state['round']
        self.shared_trained = state['shared_trained']
        self.finished = state['finished']
        self.strategy.load_state_dict(state['strategy'])
        self.history = decode_history(state['history'])
        # Restored once train_shared has built what the state belongs to (see run).
        self._estimator_state = state.get('estimator')

    def _save_checkpoint(self) -> None:
        state = self.state_dict()  # on every rank: an estimator's state may need collectives
        # Every rank waits for the write, and learns at once if it failed.
        dist.on_main_process(lambda: self.files.save_checkpoint(state))

    def prepare_work_dir(self, resume: bool) -> None:
        """Refuse to reuse a work dir by accident; load its checkpoint on --resume."""
        self.files.check(resume)
        state = self.files.load_checkpoint() if resume else None
        if state is not None:
            self.load_state_dict(state)
        # Every rank has checked the directory before rank 0 writes to it, or a
        # slower rank would find rank 0's first checkpoint and refuse.
        dist.barrier()
        # Only now, once the work dir and its checkpoint are accepted, does the
        # log file open (appending): bad input leaves the directory as it was.
        self.logger = self.files.open_log()
        self.journal.logger = self.logger
        # A new search starts without a journal; a resumed one keeps its current round's.
        if state is None and not resume:
            dist.on_main_process(self.journal.clear)
        else:
            dist.on_main_process(lambda: self.journal.clear_before(self.round))
        if self.files.fallback_note:
            self.logger.warning(self.files.fallback_note)
        if state is not None:
            # Lines written after the last checkpoint belong to a round
            # that will be evaluated again.
            self._rewrite_candidates()

    # -- running -------------------------------------------------------------
    def run(self, resume: bool = False, retry_failed: bool = False) -> dict:
        """Run (or finish) the search; return the best record.

        ``retry_failed`` (with ``resume``) evaluates the candidates that failed
        before once more, before the search goes on.
        """
        self.prepare_work_dir(resume)
        if self.round:
            self.logger.info(f'resumed from {self.checkpoint_path} after round {self.round}')
        if not self.finished:
            self.search_log.open()
        # Also for a finished search: exporting the best candidate needs the shared weights.
        self.estimator.train_shared(self.work_dir, resume=resume)
        if self._estimator_state is not None:
            self.estimator.load_state_dict(self._estimator_state)
        if retry_failed:
            self._retry_journaled_failures = True
            self._retry_failed()
        if self.finished:
            self.logger.info('search already finished; re-exporting the best architecture')
            return self._finish()
        if not self.shared_trained:
            self.shared_trained = True
            self._save_checkpoint()
        total = getattr(self.strategy, 'total_rounds', None)
        progress = tqdm(total=total, initial=self.round, desc='search', unit='round',
                        disable=not dist.is_main_process(), dynamic_ncols=True)
        with progress:
            while not self.strategy.done and (self.max_rounds is None or self.round < self.max_rounds):
                self._run_round()
                progress.update(1)
                if self._succeeded():
                    progress.set_postfix(best=f'{self.best_record()["score"]:.4f}')
        return self._finish()

    def _run_round(self) -> None:
        # Estimators that train while searching (ENAS, AutoGAN) train on the
        # strategy's current distribution; a no-op for the others.
        self.estimator.train_during_search(
            self.strategy.position(self.round), lambda: dist.broadcast_object(self.strategy.sample_for_training()))
        archs = dist.broadcast_object(self.strategy.ask(self.candidates_per_round))
        if not archs:
            raise NasError(f'the strategy {type(self.strategy).__name__} proposed no candidate in '
                           f'round {self.round} although it is not done; check its settings')
        journaled = dist.on_main_process(lambda: self._journal_proposals(archs))
        results = self._evaluate_with_cache(archs, journaled)
        if self.round == 0 and all(result.failed for result in results):
            # Most likely a setting every candidate shares; a week of failures helps nobody.
            # Once it is fixed, a resume must evaluate the round again, not read the journal.
            dist.on_main_process(self.journal.clear)
            raise NasError(f'every candidate of the first round failed; the first: '
                           f'{_describe_failure(results[0])}. Fix that, then start again')
        self.strategy.tell(archs, results)
        records = [self._record(arch, result) for arch, result in zip(archs, results)]
        self.history.extend(records)
        dist.on_main_process(lambda: self._write_round(records))
        self._log_round(results)
        self.search_log.add(self._round_scalars(results), step=self.round)
        self.round += 1
        self._save_checkpoint()
        dist.on_main_process(lambda: self.journal.clear_before(self.round))

    def _write_round(self, records: list[dict]) -> None:
        """Rank 0: the round's lines of candidates.jsonl, and the plots when due."""
        for record in records:
            append_jsonl(self.work_dir / CANDIDATES_NAME, record)
        self._plot()

    def _journal_proposals(self, archs: list[dict]) -> dict[str, Result]:
        """Rank 0: record the round's proposals (or check them against the journal of an
        interrupted attempt at this round) and return the candidates it finished."""
        self.journal.check_or_record_proposals(self.round, archs)
        journaled = self.journal.finished(self.round)
        if self._retry_journaled_failures:  # the first round after --retry-failed only
            journaled = {key: result for key, result in journaled.items() if not result.failed}
            self._retry_journaled_failures = False
        if journaled:
            self.logger.info(f'round {self.round}: {len(journaled)} candidate(s) finished before '
                             f'the interruption (round journal {self.journal.round_dir(self.round)}); '
                             'evaluating the others')
        return journaled

    def _record(self, arch: dict, result: Result) -> dict:
        costs = {**result.costs, **self.extra_costs(arch)}
        record = dict(round=self.round, arch=arch, score=result.score, costs=costs,
                      **flops_convention_entry(costs, self.estimator.flops_convention),
                      metrics=result.metrics, status='failed' if result.failed else 'ok')
        if result.failed:
            record['error'] = result.failure_reason
        return record

    def _rewrite_candidates(self) -> None:
        """``candidates.jsonl`` from the history, replacing what the file held."""
        dist.on_main_process(lambda: atomic_write_text(
            self.work_dir / CANDIDATES_NAME, ''.join(jsonl_line(record) for record in self.history)))

    def _log_round(self, results: list[Result]) -> None:
        scores = [r.score for r in results if not r.failed]
        stats = round_scalars([math.nan if r.failed else r.score for r in results])
        line = f'round {self.round}: {len(results)} candidates'
        if scores:
            line += f', best {stats["search/best"]:.4f}, mean {stats["search/mean"]:.4f}'
        if stats['search/failed']:
            line += f', {stats["search/failed"]:.0f} failed'
        if self._succeeded():
            line += f', best so far {self.best_record()["score"]:.4f}'
        self.logger.info(line)
        if len(scores) > 1 and len(set(scores)) == 1:
            self.logger.warning(
                f'round {self.round}: all {len(scores)} candidates scored {scores[0]:.6g}, so the '
                f'search ranks nothing. Usual causes: {TIE_CAUSES}')

    def _round_scalars(self, results: list[Result]) -> dict[str, float]:
        """The round's scores, the best so far and the strategy's own numbers, for the backends."""
        scalars = round_scalars([math.nan if r.failed else r.score for r in results])
        if self._succeeded():
            scalars['search/best_so_far'] = self.best_record()['score']
        return {**scalars, **self.strategy.log_scalars()}

    def _evaluate_with_cache(self, archs: list[dict],
                             journaled: dict[str, Result] | None = None) -> list[Result]:
        """Evaluate only architectures never evaluated before, split across ranks.

        An architecture that failed before is not evaluated again either.
        Scores of an estimator whose scores go stale (``scores_stay_valid``
        False: its shared weights keep training) are reused within a round only.
        ``journaled``: results of this round that an interrupted attempt at it
        recorded (canonical arch -> result). Every result evaluated here goes
        into the round journal.
        """
        earlier = self.history if self.estimator.scores_stay_valid else []
        known = {self.space.canonical(r['arch']): Result.from_dict(r) for r in earlier}
        known.update(journaled or {})
        fresh: dict[str, dict] = {}
        for arch in archs:
            key = self.space.canonical(arch)
            if key not in known:
                fresh.setdefault(key, arch)
        fresh_results = self._evaluate_over_ranks(list(fresh.values()), journal_round=self.round)
        known.update(zip(fresh.keys(), fresh_results))
        return [known[self.space.canonical(arch)] for arch in archs]

    def _evaluate_over_ranks(self, archs: list[dict], journal_round: int | None = None) -> list[Result]:
        """The results of ``archs`` on every rank: split across the ranks, unless the
        estimator spreads each evaluation over them itself. With ``journal_round``, each
        result goes into that round's journal as soon as it is known, written by the rank
        that scored it (by rank 0 for an estimator that evaluates collectively)."""
        def evaluate_each(share: list[dict]) -> list[Result]:
            # One candidate at a time: a failure is a result, so it reaches the
            # gather like any other and no rank waits forever.
            results = []
            for arch in share:
                results.append(self._evaluate_one(arch))
                if journal_round is not None and (not self.estimator.evaluates_collectively
                                                  or dist.is_main_process()):
                    self._journal_result(journal_round, arch, results[-1])
            return results
        if self.estimator.evaluates_collectively:
            return evaluate_each(archs)
        costs = [self.estimator.evaluation_cost(arch) for arch in archs]
        return dist.evaluate_split(archs, evaluate_each, None if None in costs else costs)

    def _journal_result(self, round_index: int, arch: dict, result: Result) -> None:
        """Record a finished candidate; a journal that cannot be written costs only the
        restart's savings, so it is a warning (raising here would strand the other ranks
        in the gather)."""
        try:
            self.journal.record(round_index, arch, result)
        except OSError as error:
            self.logger.warning(f'round journal: could not record a candidate of round '
                                f'{round_index} ({type(error).__name__}: {error}); a restart '
                                'would evaluate it again')

    def _evaluate_one(self, arch: dict) -> Result:
        try:
            result = self.estimator.evaluate([arch])[0]
        except Exception as error:  # noqa: BLE001  (any failure of one candidate is its result)
            result = Result.failure(error)
            result.error['traceback'] = traceback.format_exc(limit=-8)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()  # an out-of-memory candidate must not starve the next
        if result.failed:
            self.logger.warning(f'candidate failed: {_describe_failure(result)}; '
                                f'arch {self.space.canonical(arch)}')
        return result

    def _retry_failed(self) -> None:
        """Evaluate the failed candidates of the history again; successes replace their records."""
        failed = [i for i, record in enumerate(self.history) if record.get('status') == 'failed']
        if not failed:
            return
        self.logger.info(f'retrying {len(failed)} failed candidate(s)')
        results = self._evaluate_over_ranks([self.history[i]['arch'] for i in failed])
        for index, result in zip(failed, results):
            record = self.history[index]
            self.history[index] = dict(self._record(record['arch'], result), round=record['round'])
            if not result.failed:
                self.strategy.revise(record['arch'], result)
        self._rewrite_candidates()
        self._save_checkpoint()

    # -- results -------------------------------------------------------------
    def _succeeded(self) -> bool:
        return any(_succeeded(record) for record in self._final_records())

    def _final_records(self) -> list[dict]:
        """Records of whole candidates: a staged search also scores prefixes."""
        finals = self._is_final.values(self.history)  # read every round: each record judged once
        return [record for record, final in zip(self.history, finals) if final]

    def best_record(self) -> dict:
        """Highest score of a whole candidate; the earliest on ties. Failures rank last.

        A strategy that ranks its result itself (:meth:`Strategy.final_candidates`)
        decides: its best's latest record.
        """
        ranked = self.strategy.final_candidates()
        if ranked:
            best = self.space.canonical(ranked[0][0])
            return [r for r in self.history if self.space.canonical(r['arch']) == best][-1]
        finals = self._final_records()
        if not finals:
            raise NasError('the search evaluated no whole candidate; check the strategy settings')
        if not any(_succeeded(record) for record in finals):
            raise NasError(f'all {len(finals)} candidates failed; see the errors in '
                           f'{self.work_dir / CANDIDATES_NAME}')
        return max(finals, key=lambda r: ranking_score(r['score']))

    def _plot(self, always: bool = False) -> None:
        """Redraw the plots of the history: after a round when :attr:`plot_schedule`
        says they are due (drawing costs more as the history grows), ``always`` at the end."""
        rounds_done = self.history[-1]['round'] + 1 if self.history else 0
        if not always and not self.plot_schedule.due(rounds_done):
            return
        plots = self.files.plots_dir
        marks = self.estimator.plot_marks()
        plot_score_per_round(self.history, plots / 'score_per_round.png', self.score_name,
                             [(label, position.round) for label, position in marks])
        plot_score_against_cost(self.history, 'flops', plots / 'score_vs_flops.png', self.score_name)
        # The strategy may add plots of its own (e.g. a controller's reward and baseline).
        self.strategy.save_plots(plots, self.score_name, marks)
        self.plot_schedule.drawn()

    def _save_top_candidates(self) -> None:
        """The strategy's ranking of its result, or the best whole candidates evaluated."""
        ranked = self.strategy.final_candidates()
        if ranked is None:
            ranked = [(r['arch'], r['score']) for r in _top_records(self._final_records(), TOP_COUNT)]
        atomic_write_json(self.work_dir / TOP_CANDIDATES_NAME,
                          [dict(arch=arch, score=score) for arch, score in ranked])

    def _finish(self) -> dict:
        best = self.best_record()

        def write_results() -> None:
            self.space.save_arch(self.work_dir / BEST_ARCH_NAME, best["arch"],
                                 arch_metrics(best, self.score_name))
            self._save_top_candidates()
            self.estimator.export(best['arch'], self.work_dir)
            self._plot(always=True)
            write_candidates_report(self.work_dir, self._title(), self.score_name, best, self.history)
        dist.on_main_process(write_results)  # rank 0 writes; a failure there stops every rank
        self.search_log.close()
        self.finished = True
        self._save_checkpoint()
        return best

    def _title(self) -> str:
        return (f'{self.work_dir.name}: {type(self.strategy).__name__} over '
                f"'{self.space.name}' v{self.space.version}, {type(self.estimator).__name__}")


def _top_records(records: list[dict], count: int) -> list[dict]:
    """The ``count`` best successful records of distinct archs (an arch's latest), best first."""
    latest = {}
    for record in records:
        if _succeeded(record):
            latest[jsonl_line(record['arch'])] = record
    return sorted(latest.values(), key=lambda r: -ranking_score(r['score']))[:count]


def _succeeded(record: dict) -> bool:
    return record.get('status', 'ok') == 'ok' and math.isfinite(record['score'])


def _describe_failure(result: Result) -> str:
    error = result.failure_reason
    return f"{error['type']}: {error['message']}"
