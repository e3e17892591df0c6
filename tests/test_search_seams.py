"""The loop's seams for searches whose shared weights keep training (ENAS, AutoGAN),
with stand-in estimators and no GAN: training every round on the strategy's
samples, scores that go stale, estimator state in the checkpoint, whole candidates."""
import json

import pytest

from nas_tasks.loop import SearchLoop
from nas_tasks.space import CategoricalSpace
from nas_tasks.strategies import RandomSearch, ReinforceController
from stand_in_estimators import DriftingSharedEstimator, FlakyEstimator, count_a, key, make_space


def controller(space, seed=3):
    return ReinforceController(space, num_steps=6, batch_size=4, hidden_size=16, lr=0.05,
                               allow_repeats=True, seed=seed)


def make_loop(work_dir, estimator, space=None):
    space = space or make_space()
    return SearchLoop(space, controller(space), estimator, work_dir, candidates_per_round=4)


def lines(work_dir):
    return (work_dir / 'candidates.jsonl').read_text()


def test_shared_weights_train_every_round_on_the_strategys_samples(tmp_path):
    estimator = DriftingSharedEstimator(steps_per_round=3)
    loop = make_loop(tmp_path, estimator)
    loop.run()
    rounds = [round_index for round_index, _ in estimator.trained_on]
    assert rounds == [r for r in range(6) for _ in range(3)]
    # Samples for training are drawn, not proposed: they are no candidates.
    assert len(lines(tmp_path).splitlines()) == 24
    assert loop.strategy.num_proposed <= 24


def test_stale_scores_are_evaluated_again_in_a_later_round(tmp_path):
    # 4 architectures, 6 rounds of 4 proposals: the controller must repeat some.
    tiny = CategoricalSpace({'k0': ['a', 'b'], 'k1': ['a', 'b']}, name='tiny')
    estimator = DriftingSharedEstimator()
    make_loop(tmp_path, estimator, tiny).run()
    records = [json.loads(line) for line in lines(tmp_path).splitlines()]
    by_arch = {}
    for record in records:
        by_arch.setdefault(key(record['arch']), []).append(record)
    repeated = [rs for rs in by_arch.values() if len({r['round'] for r in rs}) > 1]
    assert repeated, 'the controller proposed no architecture twice; the test shows nothing'
    # Evaluated once per round it was proposed in, and its score moved with training.
    assert estimator.evaluations == sum(len({r['round'] for r in rs}) for rs in by_arch.values())
    assert any(len({r['score'] for r in rs}) > 1 for rs in repeated)


def test_scores_that_stay_valid_are_cached_across_rounds(tmp_path):
    class FixedScores(DriftingSharedEstimator):
        scores_stay_valid = True
    tiny = CategoricalSpace({'k0': ['a', 'b'], 'k1': ['a', 'b']}, name='tiny')
    estimator = FixedScores()
    make_loop(tmp_path, estimator, tiny).run()
    records = [json.loads(line) for line in lines(tmp_path).splitlines()]
    distinct = {key(r['arch']) for r in records}
    assert len(records) == 24 and len(distinct) <= 4
    assert estimator.evaluations == len(distinct)


def test_kill_and_resume_restores_the_estimator_state(tmp_path):
    make_loop(tmp_path / 'straight', DriftingSharedEstimator()).run()
    killed = tmp_path / 'killed'
    with pytest.raises(KeyboardInterrupt):
        make_loop(killed, DriftingSharedEstimator(kill_at=15)).run()  # in round 3
    resumed = DriftingSharedEstimator()
    make_loop(killed, resumed).run(resume=True)
    scores = [json.loads(line)['score'] for line in lines(tmp_path / 'straight').splitlines()]
    assert len(set(scores)) > 3, 'scores must vary for the comparison to show anything'
    assert lines(killed) == lines(tmp_path / 'straight')
    assert (killed / 'best_arch.json').read_text() == (tmp_path / 'straight' / 'best_arch.json').read_text()
    # Without the estimator's state in the checkpoint the resumed scores would differ.
    assert resumed.trained_on[0][0] == 0 and len(resumed.trained_on) == 18


def test_the_result_is_a_whole_candidate(tmp_path):
    """A strategy that scores prefixes (a staged search) keeps them out of the result."""
    space = make_space()

    class NoPrefixes(RandomSearch):
        def is_final(self, arch):
            return arch['k0'] != 'a'

    loop = SearchLoop(space, NoPrefixes(space, num_candidates=24, seed=0),
                      FlakyEstimator(healthy=True), tmp_path, candidates_per_round=8)
    best = loop.run()
    records = [json.loads(line) for line in lines(tmp_path).splitlines()]
    assert any(r['arch']['k0'] == 'a' and r['score'] > best['score'] for r in records), \
        'no prefix outscored the whole candidates; the test shows nothing'
    assert best['arch']['k0'] != 'a'
    assert best['score'] == max(count_a(r['arch']) for r in records if r['arch']['k0'] != 'a')
    assert json.loads((tmp_path / 'best_arch.json').read_text())['arch'] == best['arch']
