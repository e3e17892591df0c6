"""The REINFORCE / PPO LSTM controller: valid samples, learning, conditioning,
baseline, entropy bonus, exact resume, constraints and de-duplication."""
import io
import itertools
import json
import math

import pytest
import torch

from nas_tasks.errors import NasError
from nas_tasks.estimators.base import Estimator
from nas_tasks.loop import SearchLoop
from nas_tasks.registry import STRATEGIES
from nas_tasks.result import Result
from nas_tasks.space import CategoricalSpace
from nas_tasks.strategies import ReinforceController

# Option counts 2, 3, 5, 7 and mixed option types, 1 / True / 1.0 / '1' among them.
CHOICES = {'k2': [True, False], 'k3': ['x', 'y', 'z'], 'k5': [1, True, 1.0, '1', None],
           'k7': list(range(7))}


def make_space():
    return CategoricalSpace(CHOICES, name='mixed')  # 210 archs


def first_option_count(space, arch):
    return float(sum(type(arch[k]) is type(space.options(k)[0]) and arch[k] == space.options(k)[0]
                     for k in space.keys))


def small(space, **kwargs):
    """A small, fast-learning controller for tests."""
    return ReinforceController(space, **{'hidden_size': 32, 'lr': 0.05, 'batch_size': 8, **kwargs})


def run_steps(controller, reward, steps=None):
    """Ask and tell ``steps`` times, or until done; returns the asked batches."""
    asked = []
    while not controller.done if steps is None else len(asked) < steps:
        archs = controller.ask(0)
        assert archs, 'a controller that is not done must propose something'
        controller.tell(archs, [Result(reward(arch)) for arch in archs])
        asked.append(archs)
    return asked


def all_archs(space):
    return [dict(zip(space.keys, values)) for values in itertools.product(*map(space.options, space.keys))]


def test_samples_are_valid_and_cover_every_option():
    space = make_space()
    controller = small(space, num_steps=30, allow_repeats=True)
    seen = {key: set() for key in space.keys}
    for arch in itertools.chain.from_iterable(run_steps(controller, lambda a: 0.0)):
        space.validate(arch)
        for key, value in arch.items():
            seen[key].add((type(value), value))
    assert all(len(seen[key]) == len(space.options(key)) for key in space.keys)


def test_log_probs_are_a_distribution_matching_the_sampler():
    space = make_space()
    controller = small(space, num_steps=5)
    run_steps(controller, lambda a: first_option_count(space, a), steps=3)  # away from the init
    with torch.no_grad():
        log_prob, entropy = controller.log_prob_and_entropy(all_archs(space))
    assert log_prob.exp().sum().item() == pytest.approx(1.0, abs=1e-5)
    assert (entropy > 0).all() and (entropy <= sum(math.log(len(o)) for o in CHOICES.values())).all()
    # p_old recorded at proposal time is the teacher-forced log-probability.
    archs = controller.ask(0)
    recorded = [controller._proposal_log_probs[space.canonical(a)] for a in archs]
    with torch.no_grad():
        assert controller.log_prob_and_entropy(archs)[0].tolist() == pytest.approx(recorded, abs=1e-5)


@pytest.mark.parametrize('ppo_clip', [None, 0.2])
def test_learns_to_choose_the_rewarded_options(ppo_clip):
    space = make_space()
    controller = small(space, num_steps=30, allow_repeats=True, ppo_clip=ppo_clip,
                       ppo_epochs=1 if ppo_clip is None else 4)
    run_steps(controller, lambda a: first_option_count(space, a))
    means = [mean for _, mean, _, _ in controller.history]
    assert means[0] < 2.0 and min(means[-5:]) > 3.5  # chance: 1/2 + 1/3 + 1/5 + 1/7 = 1.18
    best = {key: space.options(key)[0] for key in space.keys}
    with torch.no_grad():
        assert controller.log_prob_and_entropy([best])[0].exp().item() > 0.8


def test_later_decisions_condition_on_earlier_ones():
    # Same values at other indices, so matching needs the value embedding, not the index.
    space = CategoricalSpace({'a': ['x', 'y', 'z'], 'b': ['z', 'x', 'y']}, name='pair')
    controller = small(space, num_steps=40, allow_repeats=True)
    # Freeze 'a' uniform: a policy with independent decisions then has P(b == a) = 1/3 at most.
    head = controller.controller.heads[0]
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
    head.requires_grad_(False)
    run_steps(controller, lambda a: float(a['a'] == a['b']))
    with torch.no_grad():
        joint = controller.log_prob_and_entropy(all_archs(space))[0].exp().view(3, 3)
    assert joint.sum(1).tolist() == pytest.approx([1 / 3] * 3, abs=1e-6)
    same = joint[[0, 1, 2], [1, 2, 0]]  # b's options are a's rotated by one
    assert (same * 3 > 0.9).all(), f'P(b == a | a) = {same * 3}'


def test_baseline_is_the_moving_average_and_advantages_use_the_previous_one():
    space = make_space()
    controller = small(space, num_steps=4, batch_size=3, baseline_decay=0.9)
    advantages = []
    update = controller._update
    controller._update = lambda archs, adv, old: (advantages.append(adv.tolist()), update(archs, adv, old))
    batches = [[1.0, 2.0, 6.0], [0.0, 0.0, 3.0], [10.0, -2.0, 4.0], [5.0, 5.0, 5.0]]
    baseline = None
    for step, rewards in enumerate(batches):
        archs = controller.ask(0)
        controller.tell(archs, [Result(r) for r in rewards])
        mean = sum(rewards) / 3
        previous = mean if baseline is None else baseline
        assert advantages[-1] == pytest.approx([r - previous for r in rewards])
        baseline = 0.9 * previous + 0.1 * mean
        assert controller.baseline == pytest.approx(baseline, rel=1e-12)
        assert controller.history[-1] == (step, pytest.approx(mean), max(rewards), controller.baseline)
    assert controller.done and controller.ask(8) == []


def test_failed_evaluations_are_left_out_of_the_update():
    controller = small(make_space(), num_steps=3, batch_size=4)
    archs = controller.ask(0)
    controller.tell(archs, [Result(math.nan)] * 4)
    assert controller.baseline is None and math.isnan(controller.history[0][1])
    archs = controller.ask(0)
    controller.tell(archs, [Result(1.0), Result(math.nan), Result(3.0), Result(math.inf)])
    assert controller.baseline == 2.0 and controller.history[1][1:3] == (2.0, 3.0)
    assert all(torch.isfinite(p).all() for p in controller.controller.parameters())


def mean_entropy(controller, archs):
    with torch.no_grad():
        return controller.log_prob_and_entropy(archs)[1].mean().item()


def test_entropy_bonus_keeps_exploring():
    space = make_space()
    probe = all_archs(space)
    max_entropy = sum(math.log(len(o)) for o in CHOICES.values())
    reward = lambda a: 5.0 * first_option_count(space, a)  # noqa: E731
    runs = {}
    for name, weight, rewarded in (('bonus', 2.0, False), ('bonus+reward', 5.0, True),
                                   ('reward', 0.0, True)):
        controller = small(space, num_steps=25, allow_repeats=True, entropy_weight=weight)
        run_steps(controller, reward if rewarded else (lambda a: 0.0))
        runs[name] = mean_entropy(controller, probe)
    assert runs['bonus'] > 0.99 * max_entropy
    assert runs['bonus+reward'] > 0.9 * max_entropy
    assert runs['reward'] < 0.5 * max_entropy


# -- AutoGAN's update (reference sheet 2.4): entropy in the reward, baseline reset --

def parameters(controller):
    return [p.detach().clone() for p in controller.controller.parameters()]


def changed(before, controller):
    return any(not torch.equal(a, b) for a, b in zip(before, parameters(controller)))


def test_entropy_in_the_reward_is_what_the_history_and_baseline_see():
    space = make_space()
    controller = small(space, batch_size=4, entropy_in_reward=True, entropy_weight=0.5,
                       betas=(0.0, 0.9))
    assert controller.optimizer.param_groups[0]['betas'] == (0.0, 0.9)
    archs = controller.ask()
    with torch.no_grad():
        entropy = controller.log_prob_and_entropy(archs)[1]
    scores = [first_option_count(space, arch) for arch in archs]
    rewards = [s + 0.5 * float(h) for s, h in zip(scores, entropy)]
    assert min(entropy) > 0
    controller.tell(archs, [Result(s) for s in scores])
    _, mean, best, baseline = controller.history[0]
    assert mean == pytest.approx(sum(rewards) / 4) and best == pytest.approx(max(rewards))
    assert baseline == pytest.approx(mean)  # the first batch's mean, as always


def test_the_official_non_detached_entropy_lowers_the_entropy():
    """At the first step the advantage is 0 (baseline = reward): a detached
    entropy leaves the controller as it was; the official, non-detached one
    still moves it, towards *less* entropy, since its gradient is weighted by -log p > 0."""
    space = make_space()
    probe = all_archs(space)[:40]
    outcome = {}
    for detach in (True, False):
        controller = small(space, batch_size=1, entropy_in_reward=True, entropy_weight=1.0,
                           detach_entropy=detach, lr=0.01)
        before, entropy_before = parameters(controller), mean_entropy(controller, probe)
        archs = controller.ask()
        controller.tell(archs, [Result(3.0)])
        outcome[detach] = (changed(before, controller), mean_entropy(controller, probe) - entropy_before)
    assert outcome[True] == (False, 0.0)
    assert outcome[False][0] and outcome[False][1] < 0


def test_baseline_reset_makes_each_iterations_first_update_a_no_op():
    space = make_space()
    # Adam with beta1 = 0 (AutoGAN's) has no momentum to move on a zero gradient.
    controller = small(space, batch_size=1, entropy_weight=0.0, baseline_reset_steps=2,
                       betas=(0.0, 0.9))
    updated = []
    for step in range(4):
        before = parameters(controller)
        archs = controller.ask()
        controller.tell(archs, [Result(first_option_count(space, archs[0]) + step)])
        updated.append(changed(before, controller))
    assert updated == [False, True, False, True]
    # After a reset the baseline restarts from that step's reward.
    rewards = [entry[1] for entry in controller.history]
    assert controller.history[2][3] == pytest.approx(rewards[2])


@pytest.mark.parametrize('ppo_clip', [None, 0.2])
def test_resume_matches_an_uninterrupted_run(ppo_clip):
    space = make_space()
    kwargs = dict(num_steps=6, batch_size=5, ppo_clip=ppo_clip, ppo_epochs=1 if ppo_clip is None else 3,
                  constraint=lambda a: a['k7'] != 6)
    reward = lambda a: first_option_count(space, a)  # noqa: E731
    straight = small(space, seed=3, **kwargs)
    expected = run_steps(straight, reward)

    first = small(space, seed=3, **kwargs)
    asked = run_steps(first, reward, steps=3)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = small(space, seed=99, **kwargs)  # every bit of state must come from the file
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    asked += run_steps(resumed, reward)

    assert asked == expected and resumed.done
    assert resumed.history == straight.history and resumed.baseline == straight.baseline
    for mine, theirs in zip(resumed.controller.parameters(), straight.controller.parameters()):
        assert torch.equal(mine, theirs)


def test_load_refuses_another_controller_shape():
    space = make_space()
    state = small(space).state_dict()
    with pytest.raises(NasError, match='hidden_size'):
        small(space, hidden_size=16).load_state_dict(state)


def test_without_repeats_every_proposal_is_new_until_the_space_is_exhausted():
    space = make_space()
    controller = small(space, num_steps=100, batch_size=64)
    asked = run_steps(controller, lambda a: first_option_count(space, a), steps=4)
    assert [len(batch) for batch in asked] == [64, 64, 64, 18]
    proposed = list(itertools.chain.from_iterable(asked))
    assert len(proposed) == 210 == len({space.canonical(a) for a in proposed})
    assert controller.done and controller.ask(8) == []


def test_with_repeats_a_converged_controller_proposes_again():
    space = make_space()
    controller = small(space, num_steps=30, allow_repeats=True)
    asked = run_steps(controller, lambda a: first_option_count(space, a))
    last = asked[-1]
    assert len(last) == 8 and len({space.canonical(a) for a in last}) < 8
    assert controller.num_proposed < 30 * 8


@pytest.mark.parametrize('allow_repeats', [False, True])
def test_constraint_respected(allow_repeats):
    space = make_space()
    allowed = lambda a: a['k3'] != 'x' and a['k7'] >= 3  # noqa: E731  (excludes the rewarded options)
    controller = small(space, num_steps=5, allow_repeats=allow_repeats, constraint=allowed)
    proposed = list(itertools.chain.from_iterable(
        run_steps(controller, lambda a: first_option_count(space, a))))
    assert len(proposed) == 40 and all(map(allowed, proposed))  # 80 archs are allowed


def test_impossible_constraint_raises():
    controller = small(make_space(), constraint=lambda a: False, max_sample_tries=20)
    with pytest.raises(NasError, match='could not sample an architecture within the constraints after 20'):
        controller.ask(1)


@pytest.mark.parametrize('kwargs, message', [
    (dict(num_steps=0), 'num_steps must be an int >= 1'),
    (dict(batch_size=2.0), 'batch_size must be an int >= 1'),
    (dict(hidden_size=0), 'hidden_size must be an int >= 1'),
    (dict(lr=0), 'lr must be a number > 0'),
    (dict(baseline_decay=1.5), r'baseline_decay must be a number in \[0, 1\]'),
    (dict(entropy_weight=-1e-3), 'entropy_weight must be a number >= 0'),
    (dict(grad_clip=0.0), 'grad_clip must be a number > 0'),
    (dict(temperature=-1.0), 'temperature must be a number > 0'),
    (dict(tanh_constant='2.5'), 'tanh_constant must be a number > 0'),
    (dict(ppo_clip=1.0), r'ppo_clip must be in \(0, 1\)'),
    (dict(ppo_epochs=4), 'ppo_epochs=4 needs ppo_clip'),
    (dict(allow_repeats=1), 'allow_repeats must be True or False'),
    (dict(seed=-1), 'seed must be an int >= 0'),
    (dict(entropy_in_reward='yes'), 'entropy_in_reward must be True or False'),
    (dict(detach_entropy=None), 'detach_entropy must be True or False'),
    (dict(baseline_reset_steps=0), 'baseline_reset_steps must be an int >= 1'),
    (dict(betas=(0.0, 1.0)), r'betas must be two numbers in \[0, 1\)'),
    (dict(first_input='zero'), "first_input must be one of 'learned', 'zeros'"),
    (dict(init_range=0), 'init_range must be a number > 0'),
])
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(NasError, match=message):
        ReinforceController(make_space(), **kwargs)


def test_temperature_and_tanh_constant_shape_the_logits():
    space = make_space()
    best = {key: space.options(key)[0] for key in space.keys}
    probs = {}
    for name, kwargs in (('plain', {}), ('hot', dict(temperature=5.0)), ('tanh', dict(tanh_constant=0.5))):
        controller = small(space, num_steps=20, allow_repeats=True, seed=0, **kwargs)
        run_steps(controller, lambda a: 5.0 * first_option_count(space, a))
        with torch.no_grad():
            probs[name] = controller.log_prob_and_entropy([best])[0].exp().item()
    # Logits within [-0.5, 0.5] bound each decision's probability.
    bound = math.prod(math.exp(0.5) / (math.exp(0.5) + (len(o) - 1) * math.exp(-0.5)) for o in CHOICES.values())
    assert probs['tanh'] <= bound + 1e-6 < probs['plain']
    assert probs['hot'] < probs['plain']


def test_built_from_the_registry_and_leaves_the_global_rng_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    controller = STRATEGIES.build(dict(type='ReinforceController', space=make_space(), num_steps=7))
    assert isinstance(controller, ReinforceController) and controller.total_rounds == 7
    assert torch.equal(torch.rand(3), expected)


def _first_inputs(controller, batch=3):
    """The inputs of the LSTM's first step when the controller samples ``batch`` archs."""
    seen = []
    handle = controller.controller.cell.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    controller.sample_archs(batch)
    handle.remove()
    return seen[0]


def test_enas_initialisation_by_default():
    """A learned first input and every parameter in U(-0.1, 0.1), NAS-FPN's controller as before."""
    controller = ReinforceController(make_space(), hidden_size=100, seed=3)
    parameters = dict(controller.controller.named_parameters())
    assert 'start' in parameters
    for name, parameter in parameters.items():
        assert parameter.abs().max() <= 0.1, name
        if parameter.numel() >= 100:  # the spread of a large tensor: U(-0.1, 0.1) has std 0.058
            assert parameter.std().item() == pytest.approx(0.1 / math.sqrt(3), rel=0.2), name
    start = _first_inputs(controller)
    assert torch.equal(start, parameters['start'].detach().expand(3, -1)) and start.abs().sum() > 0


def test_the_official_autogan_initialisation_zero_first_input_and_torch_defaults():
    """AutoGAN's official controller: a zero vector as the first input (no parameter)
    and PyTorch's default initialisations (LSTMCell and Linear within 1/sqrt(hidden),
    Embedding N(0, 1)); drawn from the seed, leaving the global RNG alone. At hidden
    size 25 torch's bound is 0.2, twice ENAS's 0.1 (at AutoGAN's 100 they coincide)."""
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    controller = ReinforceController(make_space(), hidden_size=25, first_input='zeros',
                                     init_range=None, seed=3)
    assert torch.equal(torch.rand(3), expected)
    parameters = dict(controller.controller.named_parameters())
    assert 'start' not in parameters
    assert torch.equal(_first_inputs(controller), torch.zeros(3, 25))
    bound = 1 / math.sqrt(25)
    for name, parameter in parameters.items():
        if name.startswith('embeddings.'):
            assert parameter.std().item() == pytest.approx(1.0, rel=0.2), name  # N(0, 1), not U(-0.1, 0.1)
        else:
            assert parameter.abs().max() <= bound, name
            if parameter.numel() >= 100:
                assert parameter.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.2), name
    same = ReinforceController(make_space(), hidden_size=25, first_input='zeros', init_range=None, seed=3)
    other = ReinforceController(make_space(), hidden_size=25, first_input='zeros', init_range=None, seed=4)
    mine, theirs = controller.controller.state_dict(), other.controller.state_dict()
    assert all(torch.equal(mine[k], v) for k, v in same.controller.state_dict().items())
    assert not any(torch.equal(mine[k], v) for k, v in theirs.items())
    # It learns like the default one (the zero input carries no information, the LSTM's bias does).
    asked = run_steps(ReinforceController(make_space(), hidden_size=32, lr=0.05, batch_size=8, num_steps=60,
                                          allow_repeats=True, first_input='zeros', init_range=None),
                      lambda a: first_option_count(make_space(), a))
    assert sum(map(lambda a: first_option_count(make_space(), a), asked[-1])) / 8 > 3


class FirstOptionEstimator(Estimator):
    def __init__(self, space, crash_on_call=None):
        self.space = space
        self.calls = 0
        self.crash_on_call = crash_on_call

    def evaluate(self, archs):
        self.calls += 1
        if self.calls == self.crash_on_call:
            raise KeyboardInterrupt('simulated kill')
        return [Result(first_option_count(self.space, a)) for a in archs]


def test_search_loop_resumes_exactly(tmp_path):
    space = make_space()

    def make_loop(work_dir, estimator):
        strategy = small(space, num_steps=4, batch_size=4, allow_repeats=True, seed=5)
        return SearchLoop(space, strategy, estimator, work_dir, candidates_per_round=2)

    make_loop(tmp_path / 'straight', FirstOptionEstimator(space)).run()
    with pytest.raises(KeyboardInterrupt):
        make_loop(tmp_path / 'killed', FirstOptionEstimator(space, crash_on_call=3)).run()
    make_loop(tmp_path / 'killed', FirstOptionEstimator(space)).run(resume=True)
    lines = {name: (tmp_path / name / 'candidates.jsonl').read_text() for name in ('straight', 'killed')}
    assert lines['killed'] == lines['straight']
    assert [json.loads(line)['round'] for line in lines['straight'].splitlines()] == [r // 4 for r in range(16)]


# -- spaces that constrain a decision by the earlier ones (NAS-FPN) ----------------

def nas_fpn_space(**kwargs):
    from detection.nas_fpn.space import NASFPNSpace
    return NASFPNSpace(**kwargs)


def count_draws_and_invalid_checks(controller):
    """Wraps the controller's sampler and the space's validity check with counters."""
    counts = {'drawn': 0, 'invalid': 0}
    sample_archs, is_valid = controller.sample_archs, controller.space.is_valid

    def counting_sample(count):
        counts['drawn'] += count
        return sample_archs(count)

    def counting_is_valid(arch):
        valid = is_valid(arch)
        counts['invalid'] += not valid
        return valid
    controller.sample_archs = counting_sample
    controller.space.is_valid = counting_is_valid
    return counts


def test_nas_fpn_controller_proposes_only_valid_pyramids_without_redraws():
    space = nas_fpn_space()
    # Uniform draws are valid about a third of the time, so unmasked sampling redraws a lot.
    controller = small(space, num_steps=6, allow_repeats=True)
    counts = count_draws_and_invalid_checks(controller)
    asked = run_steps(controller, lambda a: float(a['cell0.op'] == 'sum'))
    proposed = list(itertools.chain.from_iterable(asked))
    assert len(proposed) == 6 * 8
    for arch in proposed:
        space.validate(arch)
    assert counts == {'drawn': len(proposed), 'invalid': 0}


def test_masked_options_have_zero_probability_and_log_probs_sum_to_one_over_valid_archs():
    # Two cells over two levels: 144 archs in the product of the options, 48 of them valid.
    space = nas_fpn_space(num_cells=2, num_inputs=2)
    controller = small(space, num_steps=5, allow_repeats=True)
    run_steps(controller, lambda a: float(a['cell1.input0'] == 2), steps=2)  # away from the init
    product = all_archs(space)
    valid = [arch for arch in product if space.is_valid(arch)]
    assert (len(product), len(valid)) == (144, 48)
    with torch.no_grad():
        log_prob, entropy = controller.log_prob_and_entropy(valid)
    assert log_prob.exp().sum().item() == pytest.approx(1.0, abs=1e-5)
    assert torch.isfinite(entropy).all() and (entropy > 0).all()

    # Teacher forcing one arch: each input1 step gives -inf to the option equal to input0.
    arch = valid[0]
    indices = [space.options(key).index(arch[key]) for key in space.keys]
    step_log_probs = {}

    def teacher(step, log_probs):
        step_log_probs[space.keys[step]] = log_probs[0]
        return torch.tensor([indices[step]])
    with torch.no_grad():
        controller.controller(1, teacher, controller._allowed_mask)
    for cell in range(2):
        input1 = step_log_probs[f'cell{cell}.input1']
        masked = space.options(f'cell{cell}.input1').index(arch[f'cell{cell}.input0'])
        assert input1[masked] == -math.inf
        assert torch.isfinite(torch.cat([input1[:masked], input1[masked + 1:]])).all()
        assert torch.isfinite(step_log_probs[f'cell{cell}.input0']).all()


def test_updates_under_masks_keep_the_controller_finite():
    controller = small(nas_fpn_space(), num_steps=3, allow_repeats=True, entropy_weight=0.1)
    run_steps(controller, lambda a: float(a['cell0.input1'] == 1))
    assert all(torch.isfinite(p).all() for p in controller.controller.parameters())


class NoConstraintSpace(CategoricalSpace):
    """A plain space whose ``allowed_options`` constrains nothing."""

    def allowed_options(self, key, partial_arch):
        return None


def test_a_space_without_constraints_is_sampled_as_before():
    plain, opted_in = make_space(), NoConstraintSpace(CHOICES, name='mixed')
    reward = lambda a: first_option_count(plain, a)  # noqa: E731
    asked = [run_steps(small(space, num_steps=3), reward) for space in (plain, opted_in)]
    assert asked[0] == asked[1]
