"""Is a search's ranking right, and does its pick beat chance? Train standalone and compare.

What ``tools/diagnose.py CONFIG WORK_DIR [--random N]`` runs. The steps:

1. read the search's successful candidates (``candidates.jsonl``; the search
   may still be running) and pick K spread over its score range;
2. train each standalone with the task's recipe (the config's
   ``diagnose.standalone``), spread over the torchrun ranks, one result file
   per finished candidate, so a killed diagnosis continues where it stopped;
3. score them again with each ablation (``diagnose.ablations``, e.g. a
   one-shot search's scores without BN recalibration), resumable the same way;
4. compare the rankings (Kendall tau, Spearman rho, bootstrap intervals,
   top-k overlap), write ``diagnostics/report.json`` and ``scatter.png``, and
   log the verdict.

With ``--random N`` (``diagnose.num_random``) the search's final pick
(``best_arch.json``) and N random architectures of its space are trained the
same way, in the same resumable, rank-spread pass (one record per arch: an arch
both selected and drawn is trained once), and the pick is placed among them
(:mod:`random_baseline`). ``diagnose.num_candidates=0`` skips the K-candidate
part; a differentiable search has only this part.
"""
from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from mmengine.config import Config
from mmengine.logging import MMLogger

from nas_tasks import dist
from nas_tasks.builder import build_component, check_settings
from nas_tasks.diagnostics.random_baseline import (MIN_RANDOM, RandomBaseline, plan_random_baseline,
                                                   read_pick, summarize)
from nas_tasks.diagnostics.random_draws import build_random_architectures, canonical_json
from nas_tasks.diagnostics.records import CandidateRecords
from nas_tasks.diagnostics.recipes import SEARCH_ABLATIONS, STANDALONE_RECIPES
from nas_tasks.diagnostics.scatter import plot_diagnosis, plot_random_baseline
from nas_tasks.diagnostics.selection import Candidate, read_search_candidates, select_spread
from nas_tasks.diagnostics.strategy_baseline import StrategyBaseline
from nas_tasks.diagnostics.statistics import (bootstrap_indices, rank_agreement, ranks, tau_difference,
                                              top_k_overlap)
from nas_tasks.diagnostics.verdict import write_verdict
from nas_tasks.errors import NasError
from nas_tasks.io import atomic_write_json, json_safe
from nas_tasks.registry import DIFFERENTIABLE_SEARCHES, SPACES
from nas_tasks.search import DIFFERENTIABLE_SEARCH_KEY
from nas_tasks.result import Result
from nas_tasks.shared_dir import check_shared_work_dir
from nas_tasks.validation import check_int
from nas_tasks.workdir import BEST_ARCH_NAME

DIAGNOSTICS_DIR = 'diagnostics'
REPORT_NAME = 'report.json'
SCATTER_NAME = 'scatter.png'
RANDOM_PLOT_NAME = 'random_baseline.png'
LOG_NAME = 'diagnose.log'
MIN_CANDIDATES = 3  # fewer have no rank correlation worth the name


@dataclass
class DiagnoseSettings:
    """The config's ``diagnose`` section."""

    standalone: dict
    ablations: list[dict] = field(default_factory=list)
    num_candidates: int = 8
    top_k: int = 3
    bootstrap_samples: int = 2000
    confidence: float = 0.95
    seed: int = 1
    num_random: int = 0  # N of the random baseline (--random N); 0: none
    random_architectures: dict | None = None  # where they come from (a differentiable search's task)
    strategy_baseline: int = 0  # S seeds of the strategy against RandomSearch (--strategy-baseline S)
    pick_seeds: int = 1  # trainings of the pick with different seeds; its lowest score is placed

    @classmethod
    def from_config(cls, cfg: Config) -> 'DiagnoseSettings':
        section = cfg.get('diagnose')
        differentiable = DIFFERENTIABLE_SEARCH_KEY in cfg
        if differentiable and not (isinstance(section, dict) and section.get('num_random')):
            raise NasError('a differentiable search ends with one architecture and scores no '
                           'candidates to rank; compare its pick with random architectures of its '
                           'space: tools/diagnose.py CONFIG WORK_DIR --random N')
        if not isinstance(section, dict) or 'standalone' not in section:
            raise NasError("the config has no diagnose=dict(standalone=dict(type=...)) section: it "
                           'names the recipe that trains candidates standalone (see docs/diagnostics.md)')
        section = dict(section)
        check_settings(section, cls.__dataclass_fields__, 'diagnose')
        search_section = cfg[DIFFERENTIABLE_SEARCH_KEY] if differentiable else cfg.get('search', {})
        # A seed other than the search's by default: a standalone training must
        # not repeat the noise of the search's own (proxy) training.
        section.setdefault('seed', int(search_section.get('seed', 0)) + 1)
        if differentiable:  # one architecture at the end: no candidates to rank
            section['num_candidates'] = 0
        settings = cls(**section)
        settings.standalone = dict(settings.standalone)
        settings.ablations = [dict(ablation) for ablation in settings.ablations]
        if settings.random_architectures is not None:
            settings.random_architectures = dict(settings.random_architectures)
        optional = ('seed', 'num_candidates', 'num_random', 'strategy_baseline')  # 0: none
        for name in ('top_k', 'bootstrap_samples', 'pick_seeds', *optional):
            check_int(f'diagnose.{name}', getattr(settings, name), minimum=0 if name in optional else 1)
        if settings.strategy_baseline:
            StrategyBaseline.check_applies(cfg)
        if 0 < settings.num_candidates < MIN_CANDIDATES:
            raise NasError(f'diagnose.num_candidates must be >= {MIN_CANDIDATES} (or 0 to skip the '
                           f'ranking), got {settings.num_candidates}: fewer candidates have no rank '
                           'correlation')
        if not (settings.num_candidates or settings.num_random or settings.strategy_baseline):
            raise NasError('nothing to diagnose: diagnose.num_candidates=0 skips the ranking, so give '
                           '--random N (the pick against N random architectures) or '
                           '--strategy-baseline S')
        if 0 < settings.num_random < MIN_RANDOM:
            raise NasError(f'--random must be >= {MIN_RANDOM}, got {settings.num_random}: fewer random '
                           "architectures say nothing about where the pick stands")
        if not 0 < settings.confidence < 1:
            raise NasError(f'diagnose.confidence must lie between 0 and 1, got {settings.confidence!r}')
        return settings


def run_diagnosis(config_path: str, work_dir: str, cfg_options: dict, launcher: str,
                  retry_failed: bool = False) -> dict:
    """Diagnose the search in ``work_dir`` that ``config_path`` ran; return the report."""
    from nas_tasks.builder import load_config
    from nas_tasks.modules import register_all_modules

    cfg = load_config(config_path, cfg_options)
    if 'search_space' not in cfg and DIFFERENTIABLE_SEARCH_KEY not in cfg:
        raise NasError(f'{config_path} is not a search config (it has no search_space nor '
                       f'{DIFFERENTIABLE_SEARCH_KEY}); give the config the search in WORK_DIR ran')
    work = Path(work_dir)
    if not work.is_dir():
        raise NasError(f'work dir {work} does not exist; give the --work-dir of a search')
    settings = DiagnoseSettings.from_config(cfg)
    register_all_modules(cfg.get('default_scope'))
    dist.init_distributed(launcher)
    check_shared_work_dir(work)  # rank 0 reads the result files every rank writes there
    return Diagnosis(cfg, work, settings, retry_failed).run()


def search_score_name(cfg: Config) -> str:
    """The key of the search's score in its records and best_arch.json: a sample-based
    search's ``search.score_name``, a differentiable task's own ``score_name``."""
    if DIFFERENTIABLE_SEARCH_KEY in cfg:
        task_type = cfg[DIFFERENTIABLE_SEARCH_KEY].get('type')
        task = DIFFERENTIABLE_SEARCHES.get(task_type) if isinstance(task_type, str) else None
        return getattr(task, 'score_name', None) or 'score'
    return cfg.get('search', {}).get('score_name', 'score')


class Diagnosis:
    """One diagnosis of the search in ``work_dir`` (files under ``work_dir/diagnostics``)."""

    def __init__(self, cfg: Config, work_dir: Path, settings: DiagnoseSettings,
                 retry_failed: bool = False):
        self.cfg = cfg
        self.work_dir = Path(work_dir)
        self.out = self.work_dir / DIAGNOSTICS_DIR
        self.settings = settings
        self.retry_failed = retry_failed
        # A differentiable search's config has no sampleable space: its archs are plain JSON.
        self.space = (build_component(SPACES, cfg.search_space, 'search_space')
                      if 'search_space' in cfg else None)
        self.canonical = self.space.canonical if self.space is not None else canonical_json
        self.score_name = search_score_name(cfg)
        self.logger: logging.Logger = MMLogger.get_instance('nas_tasks')  # until the log file opens

    def _build_recipes(self, with_ablations: bool) -> None:
        """The standalone recipe, and the ablations where there are candidates to score."""
        args = self._built_with(self.settings.seed)
        self.recipe = self._standalone_recipe(self.settings.seed)
        self.ablations = [build_component(SEARCH_ABLATIONS, ablation, f'diagnose.ablations[{index}]',
                                          default_args=args)
                          for index, ablation in enumerate(self.settings.ablations if with_ablations else [])]

    def _built_with(self, seed: int) -> dict:
        """What a recipe or an ablation is built with (the names its constructor may take)."""
        return dict(config=self.cfg, space=self.space, seed=seed, work_dir=self.work_dir)

    def _standalone_recipe(self, seed: int):
        return build_component(STANDALONE_RECIPES, self.settings.standalone, 'diagnose.standalone',
                               default_args=self._built_with(seed))

    def _open_log(self) -> logging.Logger:
        self.out.mkdir(parents=True, exist_ok=True)
        name = f'nas_tasks.diagnose.{self.out.resolve()}'
        if MMLogger.check_instance_created(name):
            return MMLogger.get_instance(name)
        return MMLogger.get_instance(name, logger_name='nas_tasks', file_mode='a',
                                     log_file=str(self.out / LOG_NAME))

    def run(self) -> dict:
        # Every rank reads and checks (so a bad input stops them all with the same
        # line); rank 0's choice counts, as a running search may add candidates meanwhile.
        found = read_search_candidates(self.work_dir, self.space) if self.settings.num_candidates else []
        if self.settings.num_candidates and len(found) < MIN_CANDIDATES:
            raise NasError(f'the search in {self.work_dir} has {len(found)} successful candidate(s); '
                           f'a diagnosis needs at least {MIN_CANDIDATES}')
        candidates = dist.broadcast_object(select_spread(found, self.settings.num_candidates)
                                           if found else [])
        # The random baseline places the pick; the strategy baseline needs a finished
        # search too (its trained shared weights): both refuse one without best_arch.json.
        pick = (read_pick(self.work_dir, self.space, self.score_name, self.canonical)
                if self.settings.num_random or self.settings.strategy_baseline else None)
        # Only now, with a search to diagnose, is anything written to its work dir.
        self.logger = self._open_log()
        if candidates:
            note = '' if len(found) > len(candidates) else ' (all of them)'
            self.logger.info(f"diagnosing {len(candidates)} of the search's {len(found)} successful "
                             f'candidates{note}, {self.score_name} {candidates[-1].search_score:.4f} to '
                             f'{candidates[0].search_score:.4f}')
        baseline = self._plan_random_baseline(pick) if self.settings.num_random else None
        trained = self._train_standalone(candidates, baseline)
        standalone_records = [trained[candidate.id] for candidate in candidates]
        ablation_records = self._score_ablations(candidates)
        if candidates:
            self._check_usable(candidates, standalone_records)  # on every rank: all stop alike
        random_baseline = None
        if baseline is not None:  # on every rank too: a failed pick stops them all alike
            random_baseline = summarize(baseline, trained, self.settings.bootstrap_samples,
                                        self.settings.confidence, self.settings.seed,
                                        self.out / 'standalone', self._retrain_pick(baseline.pick))
        strategy_baseline = None
        if self.settings.strategy_baseline:  # every rank: the reruns split their evaluations
            strategy_baseline = StrategyBaseline(
                self.cfg, self.space, self.work_dir, self.out, self.settings.strategy_baseline,
                self.settings.seed, self.settings.bootstrap_samples, self.settings.confidence,
                self.logger).run()

        def write_report() -> dict:
            report = self._report(candidates, standalone_records, ablation_records, random_baseline,
                                  strategy_baseline)
            atomic_write_json(self.out / REPORT_NAME, report)
            written = [self.out / REPORT_NAME]
            if candidates:
                plot_diagnosis(report, self.out / SCATTER_NAME)
                written.append(self.out / SCATTER_NAME)
            if random_baseline is not None:
                plot_random_baseline(report, self.out / RANDOM_PLOT_NAME)
                written.append(self.out / RANDOM_PLOT_NAME)
            self.logger.info(f'verdict: {report["verdict"]}')
            self.logger.info(f'wrote {", ".join(map(str, written))}')
            return report
        return dist.on_main_process(write_report)  # every rank gets it, or rank 0's failure

    def _train_standalone(self, candidates: list[Candidate],
                          baseline: RandomBaseline | None) -> dict[str, dict]:
        """The standalone record of every arch to train, by id: one record per arch,
        whichever part asked for it (a K candidate, the pick, a reference, a random one)."""
        to_train = list({candidate.id: candidate for candidate in
                         [*candidates, *(baseline.candidates() if baseline else [])]}.values())
        self.recipe, self.ablations = None, []
        if not to_train:  # the strategy baseline alone trains nothing standalone
            return {}
        self._build_recipes(with_ablations=bool(candidates))
        # The seed is part of what a standalone score depends on.
        store = CandidateRecords(self.out / 'standalone',
                                 dict(recipe=self.settings.standalone, seed=self.settings.seed))
        records = self._complete(
            store, to_train, 'standalone training',
            lambda candidate: self.recipe.train_and_score(candidate.arch, self.out / 'runs' / candidate.id))
        return {candidate.id: record for candidate, record in zip(to_train, records)}

    def _retrain_pick(self, pick: Candidate) -> dict[int, dict]:
        """The pick's records under the other seeds of ``diagnose.pick_seeds``, by seed.

        One standalone training is one draw of its recipe's noise; the random
        baseline's interval covers which architectures were drawn, not that
        noise. Training the pick again with other seeds shows how much of its
        standing is its own training's luck.
        """
        seeds = [self.settings.seed + index for index in range(1, self.settings.pick_seeds)]
        if not seeds:
            return {}
        repeats = [Candidate(f'{pick.key} seed {seed}', pick.arch, pick.search_score) for seed in seeds]
        seed_of = {candidate.id: seed for candidate, seed in zip(repeats, seeds)}
        store = CandidateRecords(self.out / 'pick_seeds', dict(recipe=self.settings.standalone,
                                                               seed=self.settings.seed))
        # Each repeat's recipe is built by the rank that trains it, when it does.
        records = self._complete(
            store, repeats, "the pick's training with another seed",
            lambda candidate: self._standalone_recipe(seed_of[candidate.id]).train_and_score(
                candidate.arch, self.out / 'runs' / candidate.id))
        return dict(zip(seeds, records))

    def _score_ablations(self, candidates: list[Candidate]) -> dict[str, list[dict]]:
        """Each ablation's record of each K candidate, in their order."""
        records = {}
        for ablation, ablation_cfg in zip(self.ablations, self.settings.ablations):
            store = CandidateRecords(self.out / 'ablations' / ablation.name, ablation_cfg)
            records[ablation.name] = self._complete(
                store, candidates, f'scoring {ablation.description}',
                lambda candidate, ablation=ablation: ablation.score(candidate.arch))
        return records

    def _plan_random_baseline(self, pick: Candidate) -> RandomBaseline:
        """The pick, the source's references and N random architectures (drawn on every
        rank alike, rank 0's kept)."""
        source = build_random_architectures(self.cfg, self.space, self.settings.random_architectures,
                                            self.settings.seed, self.work_dir)
        baseline = dist.broadcast_object(plan_random_baseline(
            pick, source, self.settings.num_random, self.settings.seed, self.canonical))
        references = ''.join(f', reference {name}' for name in baseline.references)
        self.logger.info(f'random baseline: the pick ({BEST_ARCH_NAME}) against '
                         f'{len(baseline.randoms)} random architectures{references}')
        return baseline

    # -- candidates ------------------------------------------------------------
    def _complete(self, store: CandidateRecords, candidates: list[Candidate], what: str,
                  score: Callable[[Candidate], Result]) -> list[dict]:
        """Every candidate's record in ``store``, producing the missing ones split across ranks."""
        pending = dist.broadcast_object(store.pending(candidates, self.retry_failed))
        done = len(candidates) - len(pending)
        self.logger.info(f'{what}: {done} of {len(candidates)} already done, {len(pending)} to do '
                         f'on {dist.get_world_size()} process(es)')

        def produce(mine: list[Candidate]) -> list[dict]:
            return [self._produce(store, candidate, what, score) for candidate in mine]

        # The records gathered from the ranks, not their files: every rank then
        # holds the same, whether or not the ranks share a file system.
        produced = {record['id']: record for record in dist.evaluate_split(pending, produce)}
        for record in produced.values():
            if record['rank'] != dist.get_rank():  # this rank logged its own as they ended
                self._log_record(what, record)
        return [produced.get(candidate.id) or store.read(candidate.id) for candidate in candidates]

    def _produce(self, store: CandidateRecords, candidate: Candidate, what: str,
                 score: Callable[[Candidate], Result]) -> dict:
        """One candidate's result, recorded by this rank as soon as it is known."""
        scored = ('' if candidate.search_score is None
                  else f' (search {self.score_name} {candidate.search_score:.4f})')
        self.logger.info(f'{what} of {candidate.id}{scored} on rank {dist.get_rank()}')
        start = time.perf_counter()
        try:
            result = score(candidate)
        except Exception as error:  # noqa: BLE001  (one candidate's failure is its result)
            result = Result.failure(error)
            result.error['traceback'] = traceback.format_exc(limit=-8)
        record = store.write(candidate, result, rank=dist.get_rank(), world_size=dist.get_world_size(),
                             seconds=time.perf_counter() - start)
        self._log_record(what, record)
        return record

    def _log_record(self, what: str, record: dict) -> None:
        outcome = (f'{record["score"]:.4f}' if record['status'] == 'ok'
                   else f'failed: {record["error"]["type"]}: {record["error"]["message"]}')
        self.logger.info(f'{what} of {record["id"]} (rank {record["rank"]}, '
                         f'{record["seconds"]:.0f} s): {outcome}')

    # -- report ----------------------------------------------------------------
    def _check_usable(self, candidates: list[Candidate], standalone: list[dict]) -> None:
        usable = sum(record['status'] == 'ok' for record in standalone)
        if usable < MIN_CANDIDATES:
            raise NasError(f'{usable} of {len(candidates)} standalone trainings succeeded; a '
                           f'diagnosis needs {MIN_CANDIDATES}. See the errors in '
                           f'{self.out / "standalone"} (rerun with --retry-failed once fixed)')

    def _report(self, candidates: list[Candidate], standalone: list[dict],
                ablations: dict[str, list[dict]], random_baseline: dict | None,
                strategy_baseline: dict | None) -> dict:
        report = dict(
            search=dict(work_dir=str(self.work_dir), score_name=self.score_name,
                        space=self.space.name if self.space is not None else None),
            settings=dict(num_candidates=self.settings.num_candidates, top_k=self.settings.top_k,
                          bootstrap_samples=self.settings.bootstrap_samples,
                          confidence=self.settings.confidence, seed=self.settings.seed,
                          standalone=self.settings.standalone,
                          standalone_score_name=self.recipe.score_name if self.recipe else None,
                          ablations=self.settings.ablations, num_random=self.settings.num_random,
                          random_architectures=self.settings.random_architectures,
                          strategy_baseline=self.settings.strategy_baseline),
            candidates=[], agreement=None, ablations={}, random_baseline=random_baseline,
            strategy_baseline=strategy_baseline)
        if candidates:
            report.update(self._ranking(candidates, standalone, ablations))
        report = json_safe(report)  # NaN (an undefined correlation) reads as None, as in the file
        report['verdict'] = write_verdict(report)
        return report

    def _ranking(self, candidates: list[Candidate], standalone: list[dict],
                 ablations: dict[str, list[dict]]) -> dict:
        """The K-candidate part of the report: the rows, the agreement, the ablations."""
        usable = [index for index, record in enumerate(standalone) if record['status'] == 'ok']
        if len(usable) < len(candidates):
            self.logger.warning(f'{len(candidates) - len(usable)} standalone training(s) failed; '
                                'they are left out of the comparison')
        rows = [self._row(candidates[i], standalone[i], ablations, i) for i in usable]
        search = [row['search_score'] for row in rows]
        trained = [row['standalone_score'] for row in rows]
        indices = bootstrap_indices(len(rows), self.settings.bootstrap_samples, self.settings.seed)
        confidence = self.settings.confidence
        for row, search_rank, standalone_rank in zip(rows, ranks(search), ranks(trained)):
            row.update(search_rank=search_rank, standalone_rank=standalone_rank)
        agreement = rank_agreement(search, trained, indices, confidence)
        agreement['top_k_overlap'] = top_k_overlap(search, trained, self.settings.top_k)
        agreement['search_best_standalone_rank'] = rows[0]['standalone_rank']
        return dict(candidates=rows, agreement=agreement,
                    ablations={ablation.name: self._ablation_summary(ablation, rows, indices)
                               for ablation in self.ablations})

    def _row(self, candidate: Candidate, standalone: dict, ablations: dict[str, list[dict]],
             index: int) -> dict:
        return dict(name=f'c{index + 1}', id=candidate.id, arch=candidate.arch,
                    search_score=candidate.search_score, standalone_score=standalone['score'],
                    standalone_metrics=standalone['metrics'],
                    ablations={name: records[index]['score'] for name, records in ablations.items()})

    def _ablation_summary(self, ablation, rows: list[dict], indices: np.ndarray) -> dict:
        scored = [row for row in rows if row['ablations'][ablation.name] is not None]
        summary = dict(description=ablation.description, candidates=len(scored))
        if len(scored) < len(rows):
            # The paired comparison needs every candidate scored both ways.
            self.logger.warning(f'{len(rows) - len(scored)} candidate(s) failed {ablation.description}; '
                                'the ablation compares the others only')
            indices = bootstrap_indices(len(scored), self.settings.bootstrap_samples, self.settings.seed)
        other = [row['ablations'][ablation.name] for row in scored]
        search = [row['search_score'] for row in scored]
        trained = [row['standalone_score'] for row in scored]
        summary['agreement'] = rank_agreement(other, trained, indices, self.settings.confidence)
        summary['tau_change'] = tau_difference(search, other, trained, indices, self.settings.confidence)
        return summary
