"""Is the strategy better than random sampling under the same estimator? (``--strategy-baseline S``)

The random baseline asks whether the search's pick beats chance; when it does
not, either the estimator ranks wrongly or the strategy searches no better
than drawing at random. This part separates the two: the search's strategy
and :class:`~nas_tasks.strategies.RandomSearch` are each run again over S seeds
with the search's own estimator (its seed, its trained shared weights: a
one-shot supernet is loaded, never trained again) and the same number of
evaluations, and their best scores *under the estimator* are compared.

Each rerun is an ordinary search loop in its own folder under
``diagnostics/strategy_baseline/`` (``<strategy>_seed<s>``, ``RandomSearch_seed<s>``),
so a killed run resumes where it stopped (the loop's checkpoints and round
journal), and a finished one is read back.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from mmengine.config import Config

from nas_tasks.builder import build_component
from nas_tasks.diagnostics.statistics import bootstrap_indices, mean_difference
from nas_tasks.errors import NasError
from nas_tasks.loop import SearchLoop
from nas_tasks.registry import ESTIMATORS, STRATEGIES
from nas_tasks.search import build_constraint, candidates_per_round
from nas_tasks.workdir import CANDIDATES_NAME

STRATEGY_BASELINE_DIR = 'strategy_baseline'
RANDOM_STRATEGY = 'RandomSearch'


class TrainedEstimator:
    """The search's estimator with its shared weights already in place: every rerun's loop
    evaluates with them, and its ``train_shared`` does nothing. Everything else is the
    estimator's own."""

    def __init__(self, estimator):
        self._estimator = estimator

    def __getattr__(self, name):
        return getattr(self._estimator, name)

    def train_shared(self, work_dir: Path, resume: bool) -> None:
        """Trained (loaded) once, from the search's own work dir, before the reruns."""


def search_evaluations(work_dir: Path, space) -> tuple[int, int]:
    """How many distinct whole architectures the search evaluated (failures included), and
    how many its first round evaluated (the reruns' round size where a strategy takes one)."""
    path = Path(work_dir) / CANDIDATES_NAME
    if not path.is_file():
        raise NasError(f'{path} not found: the strategy baseline reruns a finished search\'s '
                       'strategy with as many evaluations as it made')
    is_complete = getattr(space, 'is_complete', lambda arch: True)
    seen, first_round = set(), 0
    for line in path.read_text(encoding='utf-8').splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut off by a kill
        if space.is_valid(record['arch']) and is_complete(record['arch']):
            seen.add(space.canonical(record['arch']))
            first_round += record.get('round') == 0
    if not seen:
        raise NasError(f'{path} holds no evaluated architecture of the config\'s space')
    return len(seen), max(first_round, 1)


class StrategyBaseline:
    """S reruns of the search's strategy and of RandomSearch under the search's estimator."""

    def __init__(self, cfg: Config, space, work_dir: Path, out: Path, num_seeds: int, seed: int,
                 bootstrap_samples: int, confidence: float, logger: logging.Logger):
        self.cfg = cfg
        self.space = space
        self.work_dir = Path(work_dir)
        self.out = Path(out) / STRATEGY_BASELINE_DIR
        self.seeds = [seed + index for index in range(num_seeds)]
        self.bootstrap_samples = bootstrap_samples
        self.confidence = confidence
        self.logger = logger
        self.settings = dict(cfg.get('search') or {})
        self.search_seed = int(self.settings.get('seed', 0))

    @staticmethod
    def check_applies(cfg: Config) -> None:
        """One line where the strategy baseline cannot apply (before anything is built)."""
        if 'search_space' not in cfg:
            raise NasError('--strategy-baseline reruns a sample-based search\'s strategy; a '
                           'differentiable search has none (its architecture weights train with '
                           'the network): compare its pick with random architectures (--random N)')

    def run(self) -> dict:
        estimator = build_component(ESTIMATORS, self.cfg.estimator, 'estimator',
                                    default_args=dict(space=self.space, config=self.cfg,
                                                      seed=self.search_seed))
        if not estimator.scores_stay_valid:
            raise NasError(f'--strategy-baseline does not apply to {type(estimator).__name__}: it trains '
                           'its shared weights while the search runs, on what the strategy samples '
                           '(as AutoGAN\'s shared GAN), so a rerun of the strategy is a new search, '
                           'not more evaluations under one estimator; compare the pick with random '
                           'architectures instead (--random N)')
        evaluations, round_size = search_evaluations(self.work_dir, self.space)
        self.logger.info(f'strategy baseline: {self.cfg.strategy["type"]} and {RANDOM_STRATEGY} over '
                         f'seeds {self.seeds}, {evaluations} evaluations each, under the search\'s '
                         f'estimator ({type(estimator).__name__}, its shared weights from {self.work_dir})')
        # Loads what the search trained (a supernet's final weights); nothing is trained
        # here, as the search finished (its best_arch.json was read before).
        estimator.train_shared(self.work_dir, resume=True)
        shared = TrainedEstimator(estimator)
        constraint, extra_costs = build_constraint(self.cfg, self.space, estimator, self.search_seed)
        runs = {'search': [], 'random': []}
        for seed in self.seeds:
            strategy = self._build(dict(self.cfg.strategy), seed, constraint)
            runs['search'].append(self._rerun(
                f'search_{type(strategy).__name__}_seed{seed}', seed, strategy, shared, extra_costs,
                candidates_per_round(self.settings, strategy)))
            random = self._build(dict(type=RANDOM_STRATEGY, num_candidates=evaluations), seed, constraint)
            runs['random'].append(self._rerun(f'random_seed{seed}', seed, random, shared, extra_costs,
                                              min(round_size, evaluations)))
        return self._summary(runs, evaluations)

    def _build(self, strategy_cfg: dict, seed: int, constraint):
        return build_component(STRATEGIES, strategy_cfg, 'strategy',
                               default_args=dict(space=self.space, seed=seed, constraint=constraint))

    def _rerun(self, name: str, seed: int, strategy, estimator, extra_costs, round_size: int) -> dict:
        loop = SearchLoop(self.space, strategy, estimator, self.out / name,
                          candidates_per_round=round_size,
                          score_name=self.settings.get('score_name', 'score'),
                          max_rounds=self.settings.get('max_rounds'), extra_costs=extra_costs)
        best = loop.run(resume=True)  # a new folder starts, a killed rerun goes on
        evaluated = len({self.space.canonical(record['arch']) for record in loop.history})
        self.logger.info(f'strategy baseline {name}: best {best["score"]:.4f} after {evaluated} '
                         'evaluations')
        return dict(seed=seed, work_dir=str(self.out / name),
                    best_score=best['score'], best_arch=best['arch'], evaluations=evaluated)

    def _summary(self, runs: dict[str, list[dict]], evaluations: int) -> dict:
        search = [run['best_score'] for run in runs['search']]
        random = [run['best_score'] for run in runs['random']]
        indices = bootstrap_indices(len(self.seeds), self.bootstrap_samples, self.search_seed)
        difference = mean_difference(search, random, indices, self.confidence)
        return dict(strategy=self.cfg.strategy['type'], seeds=self.seeds, evaluations=evaluations,
                    search=dict(runs=runs['search'], mean_best=sum(search) / len(search)),
                    random=dict(runs=runs['random'], mean_best=sum(random) / len(random)),
                    difference=difference,
                    strategy_wins=sum(s > r for s, r in zip(search, random)),
                    better_than_random=bool(difference['ci'] and difference['ci'][0] > 0))
