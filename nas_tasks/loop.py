"""The search loop: train shared weights, then ask, evaluate, tell, checkpoint.

Every random decision comes from a seeded source owned by a component (the
strategy's RNG, saved in its state dict; the estimator's per-candidate seed),
so a search resumed from its last round checkpoint ends exactly as an
uninterrupted one.
"""
from __future__ import annotations

import logging
from pathlib import Path
from mmengine.logging import MMLogger
from tqdm import tqdm

from nas_tasks import dist
from nas_tasks.checkpoint import atomic_torch_save, safe_torch_load
from nas_tasks.errors import NasError
from nas_tasks.estimators.base import Estimator
from nas_tasks.io import append_jsonl, atomic_write_text, jsonl_line
from nas_tasks.plots import plot_score_against_cost, plot_score_per_round
from nas_tasks.result import Result
from nas_tasks.space import CategoricalSpace
from nas_tasks.strategies.base import Strategy

CHECKPOINT_NAME = 'search_state.pth'
CANDIDATES_NAME = 'candidates.jsonl'
BEST_ARCH_NAME = 'best_arch.json'


class SearchLoop:
    """Runs a sample-based search and owns its work directory.

    Work directory contents: ``search_state.pth`` (checkpoint after every
    round), ``candidates.jsonl`` (one line per evaluated candidate),
    ``plots/*.png`` and, at the end, ``best_arch.json`` plus whatever the
    estimator exports (e.g. the subnet weights).
    """

    def __init__(self, space: CategoricalSpace, strategy: Strategy, estimator: Estimator,
                 work_dir: Path, candidates_per_round: int, score_name: str = 'score',
                 max_rounds: int | None = None):
        self.space = space
        self.strategy = strategy
        self.estimator = estimator
        self.work_dir = Path(work_dir)
        self.candidates_per_round = candidates_per_round
        self.logger: logging.Logger = MMLogger.get_instance('nas_tasks')
        self.score_name = score_name
        self.max_rounds = max_rounds
        self.history: list[dict] = []
        self.round = 0
        self.shared_trained = False
        self.finished = False

    # -- state ---------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.work_dir / CHECKPOINT_NAME

    def state_dict(self) -> dict:
        return dict(space=self.space.name, space_version=self.space.version, round=self.round,
                    shared_trained=self.shared_trained, finished=self.finished,
                    strategy=self.strategy.state_dict(), history=self.history)

    def load_state_dict(self, state: dict) -> None:
        if (state.get('space'), state.get('space_version')) != (self.space.name, self.space.version):
            raise NasError(
                f"checkpoint {self.checkpoint_path} is for search space '{state.get('space')}' "
                f"v{state.get('space_version')}, but the config's space is '{self.space.name}' "
                f'v{self.space.version}; use another --work-dir or the matching config')
        self.round = state['round']
        self.shared_trained = state['shared_trained']
        self.finished = state['finished']
        self.strategy.load_state_dict(state['strategy'])
        self.history = list(state['history'])

    def _save_checkpoint(self) -> None:
        if dist.is_main_process():
            atomic_torch_save(self.state_dict(), self.checkpoint_path)
        dist.barrier()

    def prepare_work_dir(self, resume: bool) -> None:
        """Refuse to reuse a work dir by accident; load its checkpoint on --resume."""
        has_checkpoint = self.checkpoint_path.is_file()
        if not resume:
            if has_checkpoint or (self.work_dir / BEST_ARCH_NAME).exists():
                raise NasError(f'work dir {self.work_dir} already holds a search; pass --resume to '
                               'continue it, or choose another --work-dir')
            return
        if has_checkpoint:
            self.load_state_dict(safe_torch_load(self.checkpoint_path))
            if dist.is_main_process():
                # Lines written after the last checkpoint belong to a round
                # that will be evaluated again.
                atomic_write_text(self.work_dir / CANDIDATES_NAME,
                                  ''.join(jsonl_line(record) for record in self.history))

    # -- running -------------------------------------------------------------
    def run(self, resume: bool = False) -> dict:
        """Run (or finish) the search; return the best record."""
        self.prepare_work_dir(resume)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        # Only now, once the work dir is accepted, does the log file open (appending).
        self.logger = MMLogger.get_instance(f'nas_tasks.search.{self.work_dir.resolve()}',
                                            logger_name='nas_tasks', file_mode='a',
                                            log_file=str(self.work_dir / 'search.log'))
        if self.round:
            self.logger.info(f'resumed from {self.checkpoint_path} after round {self.round}')
        if self.finished:
            self.logger.info('search already finished; re-exporting the best architecture')
            return self._finish()
        self.estimator.train_shared(self.work_dir, resume=resume)
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
                progress.set_postfix(best=f'{self.best_record()["score"]:.4f}')
        return self._finish()

    def _run_round(self) -> None:
        archs = dist.broadcast_object(self.strategy.ask(self.candidates_per_round))
        results = self._evaluate_with_cache(archs)
        self.strategy.tell(archs, results)
        records = [dict(round=self.round, arch=arch, score=result.score, costs=result.costs,
                        metrics=result.metrics) for arch, result in zip(archs, results)]
        self.history.extend(records)
        if dist.is_main_process():
            for record in records:
                append_jsonl(self.work_dir / CANDIDATES_NAME, record)
            self._plot()
        scores = [r.score for r in results]
        self.logger.info(f'round {self.round}: {len(archs)} candidates, best {max(scores):.4f}, '
                         f'mean {sum(scores) / len(scores):.4f}, '
                         f'best so far {self.best_record()["score"]:.4f}')
        self.round += 1
        self._save_checkpoint()

    def _evaluate_with_cache(self, archs: list[dict]) -> list[Result]:
        """Evaluate only architectures never evaluated before, split across ranks."""
        known = {self.space.canonical(r['arch']): Result(r['score'], r['costs'], r['metrics'])
                 for r in self.history}
        fresh: dict[str, dict] = {}
        for arch in archs:
            key = self.space.canonical(arch)
            if key not in known:
                fresh.setdefault(key, arch)
        fresh_results = dist.evaluate_split(list(fresh.values()), self.estimator.evaluate)
        known.update(zip(fresh.keys(), fresh_results))
        return [known[self.space.canonical(arch)] for arch in archs]

    # -- results -------------------------------------------------------------
    def best_record(self) -> dict:
        """Highest score; the earliest such candidate on ties."""
        if not self.history:
            raise NasError('the search evaluated no candidate; check the strategy settings')
        return max(self.history, key=lambda r: r['score'])

    def _plot(self) -> None:
        plots = self.work_dir / 'plots'
        plot_score_per_round(self.history, plots / 'score_per_round.png', self.score_name)
        plot_score_against_cost(self.history, 'flops', plots / 'score_vs_flops.png', self.score_name)
        # Components may add plots of their own (e.g. a controller's reward and baseline).
        for component in (self.strategy, self.estimator):
            if hasattr(component, 'save_plots'):
                component.save_plots(plots, self.score_name)

    def _finish(self) -> dict:
        best = self.best_record()
        if dist.is_main_process():
            # The score last: a metric of the same name (e.g. CocoMetric's rounded
            # bbox_mAP) must not replace the unrounded score that ranked the search.
            metrics = {**best['metrics'], **best['costs'], self.score_name: best['score']}
            self.space.save_arch(self.work_dir / BEST_ARCH_NAME, best["arch"], metrics)
            self.estimator.export(best['arch'], self.work_dir)
            self._plot()
        self.finished = True
        self._save_checkpoint()
        return best

