"""The search loop's failure model: failing candidates, corrupt checkpoints, reruns, bad settings."""
import json
import logging
import math
import sys

import pytest
from mmengine.config import Config

from nas_tasks.errors import NasError
from nas_tasks.estimators.base import Estimator
from nas_tasks.loop import SearchLoop
from nas_tasks.result import Result
from nas_tasks.search import build_search
from nas_tasks.strategies import AgingEvolution, Evolution
from stand_in_estimators import GIVES_NAN, RAISES, SEED, TOY_CHOICES, FlakyEstimator, key, make_space
from stand_in_estimators import STRATEGY as STRATEGY_SETTINGS
from conftest import REPO, free_port, run_tool
from test_loop import CountingEstimator

STRATEGY = dict(STRATEGY_SETTINGS, seed=SEED)


def make_loop(work_dir, estimator, strategy_cls=Evolution, **strategy_args):
    space = make_space()
    strategy = strategy_cls(space, **(strategy_args or STRATEGY))
    return SearchLoop(space, strategy, estimator, work_dir, candidates_per_round=8,
                      score_name='hits')


def strict_json_lines(path):
    def refuse(literal):
        raise AssertionError(f'{path} holds the invalid JSON literal {literal}')
    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


def test_failing_candidates_are_recorded_and_the_search_finishes(tmp_path):
    estimator = FlakyEstimator()
    loop = make_loop(tmp_path, estimator)
    best = loop.run()
    records = strict_json_lines(tmp_path / 'candidates.jsonl')
    assert len(records) == 32
    by_arch = {key(r['arch']): r for r in records}
    raised, nan = by_arch[key(RAISES)], by_arch[key(GIVES_NAN)]
    assert raised['status'] == nan['status'] == 'failed'
    assert raised['score'] is None and nan['score'] is None
    assert raised['error']['type'] == 'RuntimeError'
    assert raised['error']['message'] == 'CUDA out of memory (simulated)'
    assert nan['error']['type'] == 'NonFiniteScore'
    assert sum(r['status'] == 'failed' for r in records) == 2
    # The other candidates scored, with distinct values, and the best is a real one.
    ok_scores = [r['score'] for r in records if r['status'] == 'ok']
    assert len(set(ok_scores)) >= 3
    assert best['score'] == max(ok_scores) and key(best['arch']) not in (key(RAISES), key(GIVES_NAN))
    # Evolution's parents (its top-k) never hold a failure.
    assert all(math.isfinite(score) for _, score in loop.strategy.top)
    assert key(RAISES) not in {key(arch) for arch, _ in loop.strategy.top}
    json.loads((tmp_path / 'best_arch.json').read_text(), parse_constant=pytest.fail)


def test_failed_candidates_are_not_evaluated_again_after_resume(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        make_loop(tmp_path, FlakyEstimator(kill_at=19)).run()  # killed in round 2
    resumed = FlakyEstimator()
    make_loop(tmp_path, resumed).run(resume=True)
    assert key(RAISES) not in resumed.attempted and key(GIVES_NAN) not in resumed.attempted
    # Rounds 2 and 3, less round 2's 2 candidates that finished before the kill.
    assert len(resumed.attempted) == 14
    failed = [r for r in strict_json_lines(tmp_path / 'candidates.jsonl') if r['status'] == 'failed']
    assert {key(r['arch']) for r in failed} == {key(RAISES), key(GIVES_NAN)}


def test_retry_failed_evaluates_the_failures_once_more(tmp_path):
    make_loop(tmp_path, FlakyEstimator()).run()
    healthy = FlakyEstimator(healthy=True)
    make_loop(tmp_path, healthy).run(resume=True, retry_failed=True)
    assert sorted(healthy.attempted) == sorted([key(RAISES), key(GIVES_NAN)])
    records = strict_json_lines(tmp_path / 'candidates.jsonl')
    assert all(r['status'] == 'ok' for r in records) and len(records) == 32


def test_aging_evolution_never_takes_a_failure_into_its_population(tmp_path):
    loop = make_loop(tmp_path, FlakyEstimator(), AgingEvolution, population_size=6,
                     sample_size=3, num_candidates=24, seed=7)
    loop.run()
    assert all(math.isfinite(score) for _, score in loop.strategy.population)
    assert sum(not math.isfinite(score) for _, score in loop.strategy.history) >= 1


def test_a_truncated_checkpoint_falls_back_to_the_round_before(tmp_path, caplog):
    make_loop(tmp_path / 'straight', CountingEstimator()).run()

    interrupted = tmp_path / 'interrupted'
    with pytest.raises(KeyboardInterrupt):
        make_loop(interrupted, CountingEstimator(crash_on_call=27)).run()  # killed in round 3
    assert (interrupted / 'search_state.prev.pth').is_file()
    checkpoint = interrupted / 'search_state.pth'
    checkpoint.write_bytes(checkpoint.read_bytes()[:200])
    resumed = CountingEstimator()
    with caplog.at_level(logging.WARNING):
        make_loop(interrupted, resumed).run(resume=True)
    # The latest checkpoint held 3 rounds; the previous one 2, so round 2 runs again, and
    # round 3 less its 2 candidates that finished before the kill (in the round journal).
    assert len(resumed.evaluated) == 14
    for name in ('best_arch.json', 'candidates.jsonl'):
        assert (interrupted / name).read_text() == (tmp_path / 'straight' / name).read_text()
    log = (interrupted / 'search.log').read_text()
    assert 'resuming from the previous checkpoint search_state.prev.pth' in log


def test_resume_of_results_without_a_checkpoint_is_refused(tmp_path):
    make_loop(tmp_path, CountingEstimator()).run()
    for name in ('search_state.pth', 'search_state.prev.pth'):
        (tmp_path / name).unlink()
    before = (tmp_path / 'best_arch.json').read_bytes()
    estimator = CountingEstimator()
    with pytest.raises(NasError, match='holds best_arch.json but no search_state.pth'):
        make_loop(tmp_path, estimator).run(resume=True)
    assert estimator.calls == 0 and (tmp_path / 'best_arch.json').read_bytes() == before


@pytest.mark.parametrize('content', [[1, 2, 3], {'round': 3}])
def test_a_checkpoint_that_is_not_a_search_state_gets_one_line(tmp_path, content):
    import torch
    tmp_path.mkdir(exist_ok=True)
    torch.save(content, tmp_path / 'search_state.pth')
    with pytest.raises(NasError, match='search_state.pth') as error:
        make_loop(tmp_path, CountingEstimator()).run(resume=True)
    assert '\n' not in str(error.value)


class ConstantEstimator(Estimator):
    def evaluate(self, archs):
        return [Result(0.0) for _ in archs]


def test_a_round_that_ranks_nothing_warns(tmp_path):
    make_loop(tmp_path, ConstantEstimator(), max_generations=1, population_size=4, top_k=2,
              num_mutation=0, num_crossover=0, seed=0).run()
    log = (tmp_path / 'search.log').read_text()
    assert 'all 4 candidates scored 0, so the search ranks nothing' in log
    assert 'score threshold' in log


class AlwaysFails(Estimator):
    def evaluate(self, archs):
        raise KeyError('bbox_mAP')


def test_a_first_round_in_which_everything_fails_stops_the_search(tmp_path):
    with pytest.raises(NasError, match="every candidate of the first round failed.*KeyError"):
        make_loop(tmp_path, AlwaysFails()).run()


def search_config(**search):
    return Config(dict(
        search_space=dict(type='CategoricalSpace', name='toy', choices=TOY_CHOICES),
        strategy=dict(type='Evolution', **STRATEGY_SETTINGS),
        estimator=dict(type='FlakyEstimator'),
        search=search))


def test_a_registered_estimator_that_fails_runs_through_the_config(tmp_path):
    loop = build_search(search_config(seed=7), tmp_path)
    loop.run()
    failed = [r for r in strict_json_lines(tmp_path / 'candidates.jsonl') if r['status'] == 'failed']
    assert {key(r['arch']) for r in failed} == {key(RAISES), key(GIVES_NAN)}


@pytest.mark.parametrize('value, message', [
    (0, 'ignored by Evolution'),  # Evolution sizes its rounds by population_size
    (8, 'ignored by Evolution'),
])
def test_candidates_per_round_where_the_strategy_ignores_it(tmp_path, value, message):
    with pytest.raises(NasError, match=message):
        build_search(search_config(candidates_per_round=value), tmp_path)


def test_candidates_per_round_zero_is_refused(tmp_path):
    cfg = search_config(candidates_per_round=0)
    cfg.strategy = dict(type='RandomSearch', num_candidates=4)
    with pytest.raises(NasError, match='candidates_per_round must be an int >= 1, got 0'):
        build_search(cfg, tmp_path)


def test_a_strategy_without_a_required_setting_gets_one_line(tmp_path):
    cfg = search_config()
    cfg.strategy = dict(type='RandomSearch')
    with pytest.raises(NasError, match="strategy 'RandomSearch' needs the setting 'num_candidates'"):
        build_search(cfg, tmp_path)


def flaky_search_config(path):
    """A search config file that finds FlakyEstimator through custom_imports."""
    path.write_text(
        "custom_imports = dict(imports=['stand_in_estimators'], allow_failed_imports=False)\n"
        f"search_space = dict(type='CategoricalSpace', name='toy', choices={TOY_CHOICES!r})\n"
        f"strategy = dict(type='Evolution', **{STRATEGY_SETTINGS!r})\n"
        "estimator = dict(type='FlakyEstimator')\n"
        f"search = dict(seed={SEED})\n")
    return path


@pytest.mark.slow
def test_under_torchrun_a_failure_on_one_rank_is_gathered_like_a_result(tmp_path):
    """Rank 1 evaluates the candidate that raises (index 1 of the first round),
    rank 0 the one that scores NaN: neither rank hangs, and the records equal
    those of one process."""
    config = flaky_search_config(tmp_path / 'flaky_search.py')
    env = {'PYTHONPATH': str(REPO / 'tests'), 'OMP_NUM_THREADS': '1'}
    two, one = tmp_path / 'two_processes', tmp_path / 'one_process'
    run_tool([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
              '--master_port', free_port(), 'tools/search.py', str(config), '--launcher', 'pytorch',
              '--work-dir', str(two)], env_extra=env, timeout=300, check=True)
    run_tool(['python', 'tools/search.py', str(config), '--work-dir', str(one)],
             env_extra=env, timeout=300, check=True)
    records = {name: strict_json_lines(d / 'candidates.jsonl') for name, d in (('two', two), ('one', one))}
    failed = [r for r in records['two'] if r['status'] == 'failed']
    assert {key(r['arch']): r['error']['type'] for r in failed} == {
        key(RAISES): 'RuntimeError', key(GIVES_NAN): 'NonFiniteScore'}
    assert [(r['arch'], r['score'], r['status']) for r in records['two']] == \
        [(r['arch'], r['score'], r['status']) for r in records['one']]
