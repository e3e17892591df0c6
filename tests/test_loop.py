"""The search loop with a synthetic estimator: records, checkpoints, exact resume, refusals."""
import json
import pytest

from nas_tasks.errors import NasError
from nas_tasks.estimators.base import Estimator
from nas_tasks.loop import SearchLoop
from nas_tasks.result import FLOPS_CONVENTIONS, MACS_CONV_MATMUL, Result
from nas_tasks.strategies import Evolution, RandomSearch
from stand_in_estimators import make_space



class CountingEstimator(Estimator):
    """Score = number of 'a' choices; FLOPs = number of 'd' choices.

    ``crash_on_call=k`` kills the process (KeyboardInterrupt) at the k-th
    evaluation call; the loop evaluates one candidate per call.
    """

    flops_convention = MACS_CONV_MATMUL

    def __init__(self, crash_on_call=None):
        self.calls = 0
        self.evaluated = []
        self.crash_on_call = crash_on_call

    def evaluate(self, archs):
        self.calls += 1
        if self.calls == self.crash_on_call:
            raise KeyboardInterrupt('simulated kill')
        self.evaluated.extend(json.dumps(a, sort_keys=True) for a in archs)
        return [Result(score=float(sum(v == 'a' for v in a.values())),
                       costs=self.costs(a), metrics={'extra': 1.0}) for a in archs]

    def costs(self, arch):
        return {'flops': float(sum(v == 'd' for v in arch.values()))}


def make_loop(work_dir, estimator=None, space=None, max_rounds=None):
    space = space or make_space()
    strategy = Evolution(space, population_size=8, max_generations=4, top_k=3, num_mutation=3,
                         num_crossover=3, seed=7)
    return SearchLoop(space, strategy, estimator or CountingEstimator(), work_dir,
                      candidates_per_round=8, score_name='hits',
                      max_rounds=max_rounds)


def read_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_run_writes_records_checkpoint_plots_and_best(tmp_path):
    estimator = CountingEstimator()
    best = make_loop(tmp_path, estimator).run()
    records = read_lines(tmp_path / 'candidates.jsonl')
    assert len(records) == 32 == len(estimator.evaluated)
    assert len(set(estimator.evaluated)) == 32, 'an architecture was evaluated twice'
    assert [r['round'] for r in records] == [r // 8 for r in range(32)]
    assert best['score'] == max(r['score'] for r in records)
    document = json.loads((tmp_path / 'best_arch.json').read_text())
    assert document['space'] == 'toy' and document['arch'] == best['arch']
    assert document['metrics']['hits'] == best['score']
    assert document['metrics']['flops'] == sum(v == 'd' for v in best['arch'].values())
    # What flops counts is named in every record that holds them, and in best_arch.json.
    assert all(r['flops_convention'] == MACS_CONV_MATMUL for r in records)
    assert document['metrics']['flops_convention'] == MACS_CONV_MATMUL
    for plot in ('score_per_round.png', 'score_vs_flops.png'):
        assert (tmp_path / 'plots' / plot).read_bytes()[:4] == b'\x89PNG'


def test_every_task_that_counts_flops_names_a_known_convention():
    """DetNAS and FNA count conv/matmul multiply-adds, NAS-FPN and Auto-DeepLab mmengine's
    FLOPs: each record's flops_convention says which."""
    from backbones.fna.search_task import FNASearch
    from backbones.resources import DetNASCostTable
    from detection.proxy import ProxyDetectionEstimator
    from nas_tasks.result import FLOPS_MMENGINE
    from segmentation.auto_deeplab.search import AutoDeepLabSearch
    assert DetNASCostTable.flops_convention == FNASearch.flops_convention == MACS_CONV_MATMUL
    assert ProxyDetectionEstimator.flops_convention == AutoDeepLabSearch.flops_convention \
        == FLOPS_MMENGINE
    assert set(FLOPS_CONVENTIONS) == {MACS_CONV_MATMUL, FLOPS_MMENGINE}


def test_resume_after_a_kill_ends_like_an_uninterrupted_run(tmp_path):
    make_loop(tmp_path / 'straight').run()

    interrupted = tmp_path / 'interrupted'
    with pytest.raises(KeyboardInterrupt):
        make_loop(interrupted, CountingEstimator(crash_on_call=19)).run()
    # A half-written line from the killed round must not survive the resume.
    with open(interrupted / 'candidates.jsonl', 'a') as f:
        f.write('{"round": 2, "partial": true}\n')
    resumed_estimator = CountingEstimator()
    make_loop(interrupted, resumed_estimator).run(resume=True)

    # Rounds 2 and 3 are left, less the 2 candidates of round 2 that finished before the
    # kill (kept in the round journal).
    assert len(resumed_estimator.evaluated) == 14, 'resume re-evaluated finished candidates'
    for name in ('best_arch.json', 'candidates.jsonl'):
        assert (interrupted / name).read_text() == (tmp_path / 'straight' / name).read_text()


def test_refuses_a_work_dir_that_holds_a_search(tmp_path):
    make_loop(tmp_path).run()
    before = (tmp_path / 'best_arch.json').read_bytes()
    with pytest.raises(NasError, match='--resume'):
        make_loop(tmp_path).run()
    assert (tmp_path / 'best_arch.json').read_bytes() == before


def test_resume_of_a_finished_search_evaluates_nothing(tmp_path):
    first = make_loop(tmp_path).run()
    estimator = CountingEstimator()
    again = make_loop(tmp_path, estimator).run(resume=True)
    assert estimator.calls == 0
    assert again == first


def test_checkpoint_of_another_space_is_rejected(tmp_path):
    make_loop(tmp_path, max_rounds=1).run()
    with pytest.raises(NasError, match="space 'toy'.*'other'"):
        make_loop(tmp_path, space=make_space('other')).run(resume=True)


def test_duplicates_within_a_round_are_evaluated_once(tmp_path):
    space = make_space()

    class Repeating(RandomSearch):
        def ask(self, n):
            archs = super().ask(n // 2)
            return archs + archs

    estimator = CountingEstimator()
    loop = SearchLoop(space, Repeating(space, num_candidates=4, seed=0), estimator, tmp_path,
                      candidates_per_round=4)
    loop.run()
    assert len(estimator.evaluated) == len(set(estimator.evaluated)) == 4
    assert len(read_lines(tmp_path / 'candidates.jsonl')) == 8
