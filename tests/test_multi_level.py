"""Staged spaces and the multi-level search (AutoGAN's MLAS) with stand-in
rewards: prefixes, top-k growth, fresh controllers, failures, learning and an
exact resume through the search loop."""
import io
import itertools
import json
import math

import pytest
import torch

from nas_tasks.errors import ArchError, NasError
from nas_tasks.estimators.base import Estimator
from nas_tasks.loop import SearchLoop
from nas_tasks.registry import SPACES, STRATEGIES
from nas_tasks.result import Result
from nas_tasks.space import StagedSpace
from nas_tasks.strategies import MultiLevelSearch

# Three cells as AutoGAN's, smaller: 6, 12 and 24 choices per stage.
STAGES = [{'c1.conv': ['post', 'pre'], 'c1.norm': [None, 'bn', 'in']},
          {'c2.conv': ['post', 'pre'], 'c2.norm': [None, 'bn', 'in'], 'c2.skip': [0, 1]},
          {'c3.conv': ['post', 'pre'], 'c3.norm': [None, 'bn', 'in'], 'c3.skip': [0, 1, 2, 3]}]
WHOLE = {'c1.conv': 'pre', 'c1.norm': 'bn', 'c2.conv': 'post', 'c2.norm': None, 'c2.skip': 1,
         'c3.conv': 'pre', 'c3.norm': 'in', 'c3.skip': 3}
CONTROLLER = dict(hidden_size=16, lr=0.05, batch_size=4, allow_repeats=True)


def make_space():
    return StagedSpace(STAGES, name='cells')


def first_options(arch):
    """The stand-in reward: how many decisions take their first option."""
    firsts = {key: options[0] for stage in STAGES for key, options in stage.items()}
    return float(sum(value == firsts[key] for key, value in arch.items()))


def make_search(space=None, **kwargs):
    settings = dict(stage_steps=(3, 3, 3), num_candidates=6, top_k=3, controller=CONTROLLER, seed=3)
    return MultiLevelSearch(space or make_space(), **{**settings, **kwargs})


def run(search, reward):
    """Ask and tell until done. Returns the rounds as (stage, archs, scores, grow round?)."""
    rounds = []
    while not search.done:
        stage, finished = search.stage, len(search.kept)
        archs = search.ask(0)
        assert archs, 'a search that is not done must propose something'
        scores = [reward(arch) for arch in archs]
        search.tell(archs, [Result(score) for score in scores])
        rounds.append((stage, archs, scores, len(search.kept) > finished))
    return rounds


# -- the staged space -----------------------------------------------------------------

def test_space_size_stages_and_prefixes():
    space = make_space()
    assert space.size() == 6 * 12 * 24
    assert space.num_stages == 3
    assert space.keys_of_stage(1) == ['c2.conv', 'c2.norm', 'c2.skip']
    assert space.keys == [key for stage in STAGES for key in stage]
    first_two = space.prefix(WHOLE, 1)
    assert first_two == {'c1.conv': 'pre', 'c1.norm': 'bn', 'c2.conv': 'post', 'c2.norm': None,
                         'c2.skip': 1}
    assert [space.stage_of(space.prefix(WHOLE, s)) for s in range(3)] == [0, 1, 2]
    assert [space.is_complete(space.prefix(WHOLE, s)) for s in range(3)] == [False, False, True]
    with pytest.raises(ArchError, match='no prefix up to stage 2'):
        space.prefix(first_two, 2)
    assert isinstance(SPACES.build(dict(type='StagedSpace', stages=STAGES, name='cells')), StagedSpace)


@pytest.mark.parametrize('arch, message', [
    ({'c1.conv': 'pre'}, "missing key.*'c1.norm'"),  # half a stage
    ({'c1.conv': 'pre', 'c1.norm': 'bn', 'c3.conv': 'pre', 'c3.norm': 'in', 'c3.skip': 3},
     "missing key.*'c2.conv', 'c2.norm', 'c2.skip'"),  # a stage skipped
    ({**WHOLE, 'c4.conv': 'pre'}, "unknown key.*'c4.conv'"),
    ({**WHOLE, 'c2.skip': 2}, "'c2.skip' has value 2"),
    ({'c1.conv': 'pre', 'c1.norm': 'bn', 'c2.conv': 'post'}, "missing key.*'c2.norm'"),
    ([], 'must be a dict'),
])
def test_only_prefixes_of_whole_stages_are_valid(arch, message):
    with pytest.raises(ArchError, match=message):
        make_space().validate(arch)


def test_documents_hold_whole_architectures_only(tmp_path):
    space = make_space()
    space.save_arch(tmp_path / 'arch.json', WHOLE, {'score': 1.0})
    assert space.from_document(json.loads((tmp_path / 'arch.json').read_text())) == WHOLE
    prefix = space.prefix(WHOLE, 1)
    with pytest.raises(ArchError, match='never a prefix'):
        space.save_arch(tmp_path / 'prefix.json', prefix)
    with pytest.raises(ArchError, match='never a prefix'):
        space.from_document({'space': 'cells', 'version': 1, 'arch': prefix})
    assert not (tmp_path / 'prefix.json').exists()


def test_a_key_in_two_stages_is_refused():
    with pytest.raises(NasError, match="'c1.conv' of stage 1 belong to an earlier stage"):
        StagedSpace([STAGES[0], {'c1.conv': ['a', 'b']}], name='bad')
    with pytest.raises(NasError, match='stage 1 must be a non-empty dict'):
        StagedSpace([STAGES[0], {}], name='bad')


def test_conditioned_space_counts_and_draws_only_the_kept_prefixes():
    import random
    space = make_space()
    prefixes = [{'c1.conv': 'pre', 'c1.norm': 'bn'}, {'c1.conv': 'post', 'c1.norm': None}]
    stage = space.conditioned(1, prefixes)
    assert stage.size() == 2 * 12
    rng = random.Random(0)
    drawn = [stage.sample(rng) for _ in range(200)]
    assert {json.dumps(space.prefix(arch, 0), sort_keys=True) for arch in drawn} == {
        json.dumps(prefix, sort_keys=True) for prefix in prefixes}
    assert len({json.dumps(arch, sort_keys=True) for arch in drawn}) == stage.size()
    with pytest.raises(ArchError, match='not one of the 2 prefixes'):
        stage.validate({'c1.conv': 'pre', 'c1.norm': None, 'c2.conv': 'pre', 'c2.norm': None,
                        'c2.skip': 0})
    with pytest.raises(NasError, match='must decide the stages up to 0'):
        space.conditioned(1, [space.prefix(WHOLE, 1)])


# -- the multi-level search ----------------------------------------------------------------

def test_keeps_the_top_k_of_each_stage_and_grows_only_the_new_stage():
    space = make_space()
    search = make_search(space)
    rounds = run(search, first_options)
    grow_rounds = [(stage, archs, scores) for stage, archs, scores, grew in rounds if grew]
    assert [stage for stage, _, _ in grow_rounds] == [0, 1, 2]
    assert len(rounds) == search.total_rounds == 3 + 3 + 3 + 3
    for (stage, archs, scores), kept in zip(grow_rounds, search.kept):
        assert len(archs) == 6 and len({json.dumps(a, sort_keys=True) for a in archs}) == 6
        best_first = sorted(zip(archs, scores), key=lambda pair: -pair[1])  # stable: ties by order
        assert kept == best_first[:3]
        assert len(set(scores)) > 1, 'the stand-in reward must tell candidates apart'
    for stage, archs, _, _ in rounds:
        for arch in archs:
            assert space.stage_of(arch) == stage
            if stage:
                assert space.prefix(arch, stage - 1) in [prefix for prefix, _ in search.kept[stage - 1]]
    # Prefixes are picked at random with replacement, so a stage uses several of them.
    stage_two = [arch for stage, archs, _, _ in rounds if stage == 2 for arch in archs]
    assert len({json.dumps(space.prefix(arch, 1), sort_keys=True) for arch in stage_two}) > 1
    assert search.best_candidate == search.kept[2][0][0] and space.is_complete(search.best_candidate)
    assert search.ask(0) == []


def test_each_stage_gets_a_fresh_controller():
    search = make_search(stage_steps=(5, 5, 1))
    initial = [p.detach().clone() for p in search.controller.controller.cell.parameters()]
    first = search.controller
    while len(search.kept) < 1:
        run_one_round(search)
    trained = [p.detach().clone() for p in first.controller.cell.parameters()]
    second = search.controller
    assert second is not first and second.step == 0 and second.history == []
    assert not second.optimizer.state, 'the new stage must start with a fresh optimiser'
    fresh = list(second.controller.cell.parameters())
    for before, after, new in zip(initial, trained, fresh):
        assert not torch.equal(before, after), 'stage 0 did not train its controller'
        assert not torch.equal(new, after) and not torch.equal(new, before)
    assert len(second.controller.heads) == 5  # reads stage 0's two decisions, decides three


def run_one_round(search, reward=first_options):
    archs = search.ask(0)
    search.tell(archs, [Result(reward(arch)) for arch in archs])
    return archs


def test_log_probs_and_entropy_cover_only_the_new_decisions():
    search = make_search(stage_steps=(1, 3, 1))
    while len(search.kept) < 1:
        run_one_round(search)
    controller, space = search.controller, search.space
    prefix = search.kept[0][0][0]
    completions = [dict(prefix, **dict(zip(space.keys_of_stage(1), values)))
                   for values in itertools.product(*map(space.options, space.keys_of_stage(1)))]
    with torch.no_grad():
        log_prob, entropy = controller.log_prob_and_entropy(completions)
    # A distribution over the new decisions alone: a prefix's probability would make it sum below 1.
    assert log_prob.exp().sum().item() == pytest.approx(1.0, abs=1e-5)
    assert entropy.max().item() <= math.log(2) + math.log(3) + math.log(2) + 1e-6


def test_failures_never_become_prefixes():
    def reward(arch):  # the best first cell (no norm) always fails
        return math.nan if arch['c1.norm'] is None else first_options(arch)
    search = make_search()
    rounds = run(search, reward)
    stage_zero_candidates = next(scores for stage, _, scores, grew in rounds if grew and stage == 0)
    assert any(math.isnan(score) for score in stage_zero_candidates), 'no candidate failed: a void test'
    for kept in search.kept:
        assert all(math.isfinite(score) and prefix['c1.norm'] is not None for prefix, score in kept)


def test_fewer_successes_than_top_k_keep_those_and_none_is_an_error():
    only = {'c1.conv': 'pre', 'c1.norm': 'bn'}
    search = make_search(stage_steps=(2, 1, 1))
    while len(search.kept) < 1:
        run_one_round(search, lambda arch: 1.0 if space_prefix(arch) == only else math.nan)
    assert search.kept[0] == [(only, 1.0)]
    assert all(space_prefix(arch) == only for arch in run_one_round(search))

    failing = make_search(stage_steps=(2, 1, 1))
    with pytest.raises(NasError, match='all 6 candidates at the end of stage 0 failed'):
        run(failing, lambda arch: math.nan)


def space_prefix(arch):
    return {key: arch[key] for key in STAGES[0]}


def test_is_final_only_for_whole_architectures():
    search, space = make_search(), make_space()
    assert search.is_final(WHOLE)
    assert not search.is_final(space.prefix(WHOLE, 0)) and not search.is_final(space.prefix(WHOLE, 1))


def test_sample_for_training_grows_a_kept_prefix_without_proposing_it():
    search = make_search()
    while len(search.kept) < 2:
        run_one_round(search)
    proposed = search.num_proposed
    kept = [prefix for prefix, _ in search.kept[1]]
    for _ in range(10):
        arch = search.sample_for_training()
        assert search.space.is_complete(arch) and search.space.prefix(arch, 1) in kept
    assert search.num_proposed == proposed


def test_the_controller_learns_on_a_stage():
    def reward(arch):  # only the new stage's decisions count
        return float(arch.get('c2.skip') == 1) + float(arch.get('c2.norm') == 'in')
    search = make_search(stage_steps=(1, 40, 1), controller=dict(CONTROLLER, batch_size=8))
    while search.stage < 2:
        run_one_round(search, reward)
    history = search.finished_histories[1]
    early, late = ([entry[1] for entry in part] for part in (history[:5], history[-5:]))
    assert sum(late) / 5 > sum(early) / 5 + 0.5, (early, late)


def test_state_round_trips_through_a_weights_only_load_and_resumes_exactly():
    def after(search):
        return run(search, first_options)
    straight = make_search()
    for _ in range(5):  # into stage 1, past stage 0's grow round
        run_one_round(straight)
    buffer = io.BytesIO()
    torch.save(straight.state_dict(), buffer)
    buffer.seek(0)
    resumed = make_search(seed=99)  # another seed: everything must come from the state
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    assert resumed.stage == 1 and resumed.kept == straight.kept
    assert after(resumed) == after(straight)


@pytest.mark.parametrize('kwargs, message', [
    (dict(stage_steps=(3, 3)), 'one int per stage'),
    (dict(top_k=7), r'top_k \(7\) cannot exceed num_candidates \(6\)'),
    (dict(controller=dict(num_steps=5, seed=1)), 'must not set num_steps, seed'),
    (dict(controller=dict(hidden_size=0)), 'hidden_size must be an int >= 1'),
])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(NasError, match=message):
        make_search(**kwargs)


def test_needs_a_staged_space_and_is_registered():
    from stand_in_estimators import make_space as flat_space
    with pytest.raises(NasError, match='needs a StagedSpace'):
        MultiLevelSearch(flat_space())
    built = STRATEGIES.build(dict(type='MultiLevelSearch', space=make_space(), stage_steps=[1, 1, 1]))
    assert isinstance(built, MultiLevelSearch) and not built.uses_candidates_per_round


# -- through the search loop -------------------------------------------------------------

class StandIn(Estimator):
    """Scores ``reward(arch)``; ``kill_at=k`` interrupts the k-th evaluation (a
    kill). "Trains" on two draws of the strategy's distribution every round,
    which advance the controller's generator as real shared training would."""

    def __init__(self, reward=first_options, kill_at=None):
        self.reward = reward
        self.kill_at = kill_at
        self.calls = 0
        self.trained_on = []
        self.positions = []

    def train_during_search(self, position, sample_arch):
        self.positions.append(position)
        self.trained_on.append([sample_arch(), sample_arch()])

    def evaluate(self, archs):
        self.calls += 1
        if self.calls == self.kill_at:
            raise KeyboardInterrupt('simulated kill')
        return [Result(self.reward(arch)) for arch in archs]


def make_loop(work_dir, estimator):
    space = make_space()
    return SearchLoop(space, make_search(space), estimator, work_dir, candidates_per_round=1,
                      score_name='firsts')


@pytest.mark.parametrize('kill_at', [9, 20])
def test_resume_after_a_kill_through_the_loop_ends_like_an_uninterrupted_run(tmp_path, kill_at):
    straight = StandIn()
    make_loop(tmp_path / 'straight', straight).run()
    assert straight.calls > 20
    interrupted = tmp_path / 'interrupted'
    with pytest.raises(KeyboardInterrupt):
        make_loop(interrupted, StandIn(kill_at=kill_at)).run()
    make_loop(interrupted, StandIn()).run(resume=True)
    for name in ('candidates.jsonl', 'best_arch.json'):
        assert (interrupted / name).read_text() == (tmp_path / 'straight' / name).read_text()
    best = json.loads((interrupted / 'best_arch.json').read_text())['arch']
    assert make_space().is_complete(best)
    # Shared training follows the stages: prefixes first, whole archs in the last stage.
    stages = [[make_space().stage_of(arch) for arch in pair] for pair in straight.trained_on]
    assert stages[0] == [0, 0] and stages[-1] == [2, 2] and stages == sorted(stages)
    assert (tmp_path / 'straight' / 'plots' / 'controller_rewards.png').read_bytes()[:4] == b'\x89PNG'


def test_the_loop_tells_the_estimator_each_rounds_stage_and_step(tmp_path):
    """Steps restart with every stage and a grow round is no step, so an
    estimator can train at the start of each stage's iterations (AutoGAN)."""
    estimator = StandIn()
    loop = make_loop(tmp_path, estimator)
    loop.run()
    steps = loop.strategy.stage_steps
    expected = []
    for stage, count in enumerate(steps):
        expected += [(stage, step) for step in range(count)] + [(stage, None)]
    assert [(p.stage, p.step) for p in estimator.positions] == expected
    assert [p.round for p in estimator.positions] == list(range(len(expected)))


def test_the_loop_never_returns_a_prefix_even_when_one_scores_best(tmp_path):
    """The loop ranks only ``strategy.is_final`` archs: here a prefix of first
    options scores 1.0, as high as any whole architecture, and comes first."""
    def share_of_first_options(arch):
        return first_options(arch) / len(arch)
    best = make_loop(tmp_path, StandIn(share_of_first_options)).run()
    records = [json.loads(line) for line in (tmp_path / 'candidates.jsonl').read_text().splitlines()]
    assert any(not make_space().is_complete(r['arch']) and r['score'] >= best['score'] for r in records)
    assert make_space().is_complete(best['arch'])
    document = json.loads((tmp_path / 'best_arch.json').read_text())
    assert make_space().is_complete(document['arch'])


def test_the_last_stages_top_k_is_the_result_even_when_an_earlier_score_was_higher(tmp_path):
    """Rewards that go stale: a whole arch scored early in the last stage is not
    compared with the final candidates, which were scored together at the end."""
    class Drifting(StandIn):
        scores_stay_valid = False

        def evaluate(self, archs):
            # Everything scores lower as the search goes on, so early scores are the highest.
            self.calls += 1
            return [Result(first_options(arch) - 0.1 * self.calls) for arch in archs]
    loop = make_loop(tmp_path, Drifting())
    best = loop.run()
    kept = loop.strategy.kept[-1]
    records = [json.loads(line) for line in (tmp_path / 'candidates.jsonl').read_text().splitlines()]
    whole = [r for r in records if make_space().is_complete(r['arch'])]
    assert max(r['score'] for r in whole) > kept[0][1]  # an earlier whole arch scored higher
    assert best['arch'] == kept[0][0] and best['score'] == kept[0][1]
    top = json.loads((tmp_path / 'top_candidates.json').read_text())
    assert [(entry['arch'], entry['score']) for entry in top] == kept
    assert json.loads((tmp_path / 'best_arch.json').read_text())['arch'] == kept[0][0]


def test_the_estimators_marks_reach_every_plot(tmp_path, monkeypatch):
    from nas_tasks import loop as loop_module
    from nas_tasks.strategies.base import SearchPosition

    class Marking(StandIn):
        def plot_marks(self):
            return [('reset', position) for position in self.positions if position.step == 1]
    drawn = {}
    monkeypatch.setattr(loop_module, 'plot_score_per_round',
                        lambda history, path, name, marks: drawn.__setitem__('rounds', marks))
    monkeypatch.setattr('nas_tasks.strategies.multi_level.plot_staged_controller_rewards',
                        lambda histories, path, name, marks: drawn.__setitem__('steps', marks))
    loop = make_loop(tmp_path, Marking())
    loop.run()
    step_one = [p for p in loop.estimator.positions if p.step == 1]
    assert len(step_one) == 3  # one per stage
    assert drawn['rounds'] == [('reset', p.round) for p in step_one]
    assert drawn['steps'] == [('reset', p) for p in step_one]
    assert all(isinstance(p, SearchPosition) for _, p in drawn['steps'])
