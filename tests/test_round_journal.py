"""The round journal: each finished candidate of a round on disk as soon as it is scored,
so that a restarted round evaluates only what is missing; and the resume that a
launcher's restart starts by itself. In this process, with stand-in estimators (the
torchrun deaths are in test_worker_death.py)."""
import contextlib
import json
import logging
import math

import pytest

from conftest import assert_one_line
from nas_tasks.errors import NasError
from nas_tasks.loop import SearchLoop
from nas_tasks.result import Result
from nas_tasks.round_journal import JOURNAL_DIR, RoundJournal
from nas_tasks.strategies import Evolution
from stand_in_estimators import (GIVES_NAN, RAISES, SEED, STRATEGY, TOY_CHOICES, FlakyEstimator,
                                 key, make_space)

SPACE = make_space()
ARCHS = [{name: 'a' for name in TOY_CHOICES}, {name: 'b' for name in TOY_CHOICES},
         {name: 'c' for name in TOY_CHOICES}]


def journal(tmp_path):
    return RoundJournal(tmp_path, SPACE.canonical, logging.getLogger('test_round_journal'))


# -- the journal's files ---------------------------------------------------------------

def test_results_read_back_exactly_failures_and_non_finite_numbers_included(tmp_path):
    results = [
        Result(0.1 + 0.2, costs={'flops': 3e9, 'seconds': 12.5}, metrics={'ap': 1 / 3, 'n': 7}),
        Result(math.nan, costs={'seconds': 1.0},
               error={'type': 'RuntimeError', 'message': 'CUDA out of memory',
                      'traceback': 'Traceback (most recent call last):\n  ...'}),
        Result(math.inf, metrics={'loss': -math.inf, 'other': math.nan}),
    ]
    written = journal(tmp_path)
    written.check_or_record_proposals(3, ARCHS)
    for arch, result in zip(ARCHS, results):
        written.record(3, arch, result)
    read = journal(tmp_path).finished(3)
    assert set(read) == {SPACE.canonical(arch) for arch in ARCHS}
    for arch, result in zip(ARCHS, results):
        again = read[SPACE.canonical(arch)]
        assert repr(again) == repr(result)  # NaN != NaN: compare what they print
        assert again.failed == result.failed and again.failure_reason == result.failure_reason
    # Strict JSON on disk: no NaN or Infinity literal.
    for path in (tmp_path / JOURNAL_DIR).rglob('*.json'):
        json.loads(path.read_text(), parse_constant=pytest.fail)


def test_interrupted_writes_and_damaged_files_are_evaluated_again(tmp_path, caplog):
    written = journal(tmp_path)
    for arch in ARCHS:
        written.record(0, arch, Result(1.0))
    folder = written.round_dir(0)
    # What a kill in the middle of an atomic write leaves: a temporary file, never read.
    (folder / f'.{written.candidate_path(0, ARCHS[0]).name}.123.abcd.tmp').write_text('{"arc')
    written.candidate_path(0, ARCHS[1]).write_text('{"round": 0, "arch": {"k0"')  # a damaged disk
    # A file moved to another architecture's place (or another round's folder).
    written.candidate_path(0, ARCHS[2]).write_text(
        written.candidate_path(0, ARCHS[0]).read_text())
    with caplog.at_level(logging.WARNING, logger='test_round_journal'):
        read = written.finished(0)
    assert set(read) == {SPACE.canonical(ARCHS[0])}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and all('done again' in w for w in warnings), warnings
    assert 'cannot be read' in warnings[0] or 'cannot be read' in warnings[1]


def test_other_proposals_for_a_journaled_round_are_refused_in_one_line(tmp_path):
    written = journal(tmp_path)
    written.check_or_record_proposals(2, ARCHS)
    written.check_or_record_proposals(2, [dict(arch) for arch in ARCHS])  # the same: accepted
    with pytest.raises(NasError) as error:
        written.check_or_record_proposals(2, [ARCHS[0], ARCHS[2], ARCHS[1]])
    assert_one_line(str(error.value), 'round 2', 'first difference at candidate 1',
                    str(written.round_dir(2)))


def test_clearing_keeps_the_rounds_still_to_come(tmp_path):
    written = journal(tmp_path)
    for round_index in (0, 1, 2):
        written.record(round_index, ARCHS[0], Result(1.0))
    written.clear_before(2)
    assert [p.name for p in (tmp_path / JOURNAL_DIR).iterdir()] == ['round_000002']
    assert written.finished(2) and not written.finished(1)


# -- the loop --------------------------------------------------------------------------

def make_loop(work_dir, estimator):
    return SearchLoop(SPACE, Evolution(SPACE, seed=SEED, **STRATEGY), estimator, work_dir,
                      candidates_per_round=8)


def kill_and_resume(tmp_path, kill_at, resumed_estimator, **run):
    """An uninterrupted search's work dir and a search killed at its ``kill_at``-th
    evaluation, then resumed with ``resumed_estimator``."""
    make_loop(tmp_path / 'straight', FlakyEstimator()).run()
    killed = tmp_path / 'killed'
    with pytest.raises(KeyboardInterrupt):
        make_loop(killed, FlakyEstimator(kill_at=kill_at)).run()
    make_loop(killed, resumed_estimator).run(resume=True, **run)
    return tmp_path / 'straight', killed


def test_a_round_killed_after_its_failures_evaluates_only_the_rest_on_resume(tmp_path):
    # Round 0 holds RAISES and GIVES_NAN at 1 and 2: both failed before the kill at 5.
    resumed = FlakyEstimator()
    straight, killed = kill_and_resume(tmp_path, 5, resumed)
    first_round = [json.loads(line) for line in
                   (straight / 'candidates.jsonl').read_text().splitlines()][:8]
    finished_before = {key(r['arch']) for r in first_round[:4]}
    assert {key(RAISES), key(GIVES_NAN)} <= finished_before
    assert not finished_before & set(resumed.attempted)
    assert len(resumed.attempted) == 32 - 4
    for name in ('candidates.jsonl', 'best_arch.json', 'top_candidates.json'):
        assert (killed / name).read_text() == (straight / name).read_text(), name
    scores = {json.loads(line)['score'] for line in (straight / 'candidates.jsonl').read_text().splitlines()}
    assert len(scores) >= 4, 'the compared searches must rank candidates'
    assert not list((killed / JOURNAL_DIR).iterdir()), 'the journal outlived its round'


def test_retry_failed_evaluates_the_journaled_failures_again(tmp_path):
    healthy = FlakyEstimator(healthy=True)
    kill_and_resume(tmp_path, 5, healthy, retry_failed=True)
    assert {key(RAISES), key(GIVES_NAN)} <= set(healthy.attempted)
    assert len(healthy.attempted) == 32 - 4 + 2


def test_an_estimator_that_evaluates_collectively_is_journaled_too(tmp_path):
    class Collective(FlakyEstimator):
        evaluates_collectively = True

    resumed = Collective()
    make_loop(tmp_path / 'straight', Collective()).run()
    with pytest.raises(KeyboardInterrupt):
        make_loop(tmp_path / 'killed', Collective(kill_at=13)).run()  # 4 of round 1 finished
    make_loop(tmp_path / 'killed', resumed).run(resume=True)
    assert len(resumed.attempted) == 32 - 12
    assert (tmp_path / 'killed' / 'candidates.jsonl').read_text() == \
        (tmp_path / 'straight' / 'candidates.jsonl').read_text()


def test_a_journal_that_the_strategy_does_not_propose_again_is_refused(tmp_path):
    killed = tmp_path / 'killed'
    with pytest.raises(KeyboardInterrupt):
        make_loop(killed, FlakyEstimator(kill_at=13)).run()  # in round 1
    proposals = killed / JOURNAL_DIR / 'round_000001' / 'proposals.json'
    document = json.loads(proposals.read_text())
    document['archs'][5]['k0'] = 'a' if document['archs'][5]['k0'] != 'a' else 'b'
    proposals.write_text(json.dumps(document))
    estimator = FlakyEstimator()
    with pytest.raises(NasError) as error:
        make_loop(killed, estimator).run(resume=True)
    assert_one_line(str(error.value), 'round 1', 'first difference at candidate 5', 'delete')
    assert estimator.attempted == []


def test_a_new_search_does_not_read_a_journal_left_in_its_work_dir(tmp_path):
    stale = journal(tmp_path)
    stale.record(0, ARCHS[0], Result(99.0))
    estimator = FlakyEstimator()
    make_loop(tmp_path, estimator).run()
    assert len(estimator.attempted) == 32


# -- a launcher's restart resumes by itself --------------------------------------------

def flaky_config(path):
    path.write_text(
        "custom_imports = dict(imports=['stand_in_estimators'], allow_failed_imports=False)\n"
        f"search_space = dict(type='CategoricalSpace', name='toy', choices={TOY_CHOICES!r})\n"
        f"strategy = dict(type='Evolution', **{STRATEGY!r})\n"
        "estimator = dict(type='FlakyEstimator', healthy=True)\n"
        f"search = dict(seed={SEED})\n")
    return str(path)


@contextlib.contextmanager
def logged_lines():
    """The lines the suite's console logger (an MMLogger, which does not propagate) logs."""
    from mmengine.logging import MMLogger
    logger, lines = MMLogger.get_instance('nas_tasks'), []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logger.addHandler(handler)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)


@pytest.mark.parametrize('variable', ['TORCHELASTIC_RESTART_COUNT', 'SLURM_RESTART_COUNT'])
def test_a_restarted_process_resumes_without_resume_and_says_so(tmp_path, monkeypatch, variable):
    from nas_tasks.search import run_search
    config = flaky_config(tmp_path / 'search.py')
    work_dir = tmp_path / 'work'
    first = run_search(config, str(work_dir), False, {}, 'none')
    monkeypatch.setenv(variable, '1')
    with logged_lines() as lines:
        again = run_search(config, str(work_dir), False, {}, 'none')  # refused without the restart
    assert again == first
    assert any(f'restarted by the launcher ({variable}=1)' in line for line in lines), lines
    # A restart before the first checkpoint starts the search as usual.
    assert run_search(config, str(tmp_path / 'new'), False, {}, 'none')['score'] == first['score']


def test_the_first_attempt_is_no_restart(tmp_path, monkeypatch):
    from conftest import search_error
    config = flaky_config(tmp_path / 'search.py')
    from nas_tasks.search import run_search
    run_search(config, str(tmp_path / 'work'), False, {}, 'none')
    monkeypatch.setenv('TORCHELASTIC_RESTART_COUNT', '0')
    assert '--resume' in search_error(tmp_path / 'work', config=config)


def test_a_restarted_differentiable_search_resumes_too(tmp_path, monkeypatch):
    import nas_tasks.search as search
    seen = {}
    monkeypatch.setattr(search, 'run_differentiable_search',
                        lambda cfg, work_dir, resume: seen.setdefault('resume', resume))
    monkeypatch.setenv('SLURM_RESTART_COUNT', '2')
    search.run_search('configs/auto_deeplab/auto_deeplab_toy.py', str(tmp_path), False, {}, 'none')
    assert seen == {'resume': True}
