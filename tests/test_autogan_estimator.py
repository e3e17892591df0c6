"""AutoGANEstimator at tiny widths (gf = df = 8), with a stand-in IS extractor and random real data."""
import io
import json
import random

import PIL.Image
import pytest
import torch
from torch_fidelity.feature_extractor_base import FeatureExtractorBase

from gan.autogan import AutoGANEstimator, AutoGANGenerator, AutoGANSpace
from gan.metrics import GAN_FEATURE_EXTRACTORS
from nas_tasks.errors import NasError
from nas_tasks.loop import SearchLoop
from nas_tasks.registry import ESTIMATORS
from nas_tasks.strategies import MultiLevelSearch
from nas_tasks.strategies.base import SearchPosition

SPACE = AutoGANSpace()
GAN = dict(gf_dim=8, df_dim=8, latent_dim=8, gen_batch_size=4, dis_batch_size=2)
REWARD = dict(num_images=8, splits=2, batch_size=4,
              extractor=dict(type='AutoGANStandInExtractor'))


@GAN_FEATURE_EXTRACTORS.register_module(name='AutoGANStandInExtractor', force=True)
class StandInExtractor(FeatureExtractorBase):
    """Logits from a fixed random projection of 4 x 4 pooled pixels: any image change shows."""

    def __init__(self):
        super().__init__('autogan-stand-in', ['logits'])
        self.projection = torch.randn(48, 10, generator=torch.Generator().manual_seed(0)) * 5

    @staticmethod
    def get_provided_features_list():
        return ('logits',)

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return 'logits'

    def forward(self, x):
        pooled = torch.nn.functional.adaptive_avg_pool2d(x.float() / 127.5 - 1, 4).flatten(1)
        return (pooled @ self.projection,)


def random_real_data(requested_sizes=None):
    def real_data(image_size, batch_size, seed):
        if requested_sizes is not None:
            requested_sizes.add(image_size)
        generator = torch.Generator().manual_seed(seed)
        while True:
            yield torch.rand(batch_size, 3, image_size, image_size, generator=generator) * 2 - 1
    return real_data


def make_estimator(rounds_per_iteration=3, shared_d_steps=2, reset_window=500, **kwargs):
    return AutoGANEstimator(SPACE, seed=1, gan=dict(GAN, reset_window=reset_window),
                            rounds_per_iteration=rounds_per_iteration, shared_d_steps=shared_d_steps,
                            real_data=kwargs.pop('real_data', random_real_data()),
                            reward=kwargs.pop('reward', REWARD), **kwargs)


def sampler(round_index, drawn=None):
    """Whole archs from a generator seeded by the round, so any run draws the same ones."""
    rng = random.Random(round_index)

    def sample_arch():
        arch = SPACE.sample(rng)
        if drawn is not None:
            drawn.append((round_index, arch))
        return arch
    return sample_arch


def at(round_index):
    """The position of a round of a search without stages."""
    return SearchPosition(round_index, 0, round_index)


def run_rounds(estimator, rounds, archs):
    """Train every round of ``rounds``; return the rewards of ``archs`` after each."""
    rewards = []
    for round_index in rounds:
        estimator.train_during_search(at(round_index), sampler(round_index))
        rewards.append([result.score for result in estimator.evaluate(archs)])
    return rewards


def g_params(estimator):
    return [p.detach().clone() for p in estimator.trainer.generator.parameters()]


def d_params(estimator):
    return [p.detach().clone() for p in estimator.trainer.discriminator.parameters()]


def save_and_load(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_trains_only_at_the_first_round_of_each_iteration_on_drawn_archs():
    estimator = make_estimator()
    assert not estimator.scores_stay_valid
    drawn = []
    for round_index in range(6):
        before = d_params(estimator)  # D trains at every D step, G at every n_critic-th
        estimator.train_during_search(at(round_index), sampler(round_index, drawn))
        changed = any(not torch.equal(a, b) for a, b in zip(before, d_params(estimator)))
        assert changed == (round_index in (0, 3))
    assert [round_index for round_index, _ in drawn] == [0, 0, 3, 3]  # one arch per D step
    assert estimator.trainer.d_step == 4


def test_reward_differs_between_archs_and_is_deterministic():
    estimator = make_estimator()
    estimator.train_during_search(at(0), sampler(0))
    archs = [SPACE.sample(random.Random(seed)) for seed in range(4)]
    first = estimator.evaluate(archs)
    again = estimator.evaluate(archs)
    assert len({result.score for result in first}) >= 2
    assert [r.score for r in first] == [r.score for r in again]
    assert all('is_std' in r.metrics for r in first)
    assert estimator.trainer.generator.training  # evaluate leaves it in train mode


def test_a_collapse_resets_the_gan_at_the_next_iteration():
    # A window of one loss has zero variance: the reset fires at the first G step.
    estimator = make_estimator(reset_window=1)
    estimator.train_during_search(at(0), sampler(0))
    assert estimator.reset_pending and estimator.trainer.d_step == 1
    estimator.train_during_search(at(1), sampler(1))  # the iteration's controller steps: no reset yet
    assert estimator.resets == [] and estimator.trainer.reset_log == []
    estimator.train_during_search(at(3), sampler(3))
    assert estimator.resets == [at(3)] and estimator.trainer.reset_log == [1]
    assert estimator.state_dict()['resets'] == [[3, 0, 3]]
    assert estimator.plot_marks() == [('dynamic reset', at(3))]


def test_a_collapse_in_a_stages_last_iteration_resets_before_its_candidates_are_scored():
    """The official loop re-creates G and D right after the iteration's controller
    steps, so a grow (or the final top-k) that follows scores the fresh generator,
    not the collapsed one."""
    estimator = make_estimator(reset_window=1)
    estimator.train_during_search(at(0), sampler(0))  # collapses; the iteration's controller steps follow
    assert estimator.reset_pending
    archs = [SPACE.sample(random.Random(seed)) for seed in range(3)]
    collapsed_weights, collapsed = g_params(estimator), [r.score for r in estimator.evaluate(archs)]
    grow = SearchPosition(3, 0, None)  # the stage's end: no controller step
    estimator.train_during_search(grow, sampler(3))
    assert estimator.resets == [grow] and estimator.trainer.reset_log == [1] and not estimator.reset_pending
    assert estimator.trainer.d_step == 1  # reset, not trained
    # Fresh weights (BN biases start at 0 either way).
    assert sum(not torch.equal(a, b) for a, b in zip(collapsed_weights, g_params(estimator))) > len(collapsed_weights) / 2
    fresh = [r.score for r in estimator.evaluate(archs)]
    assert len(set(fresh)) > 1 and fresh != collapsed
    # The next stage's first iteration trains the fresh GAN (whose one-loss window
    # flags a collapse at its first G step, D step 0) without a second reset yet.
    estimator.train_during_search(SearchPosition(4, 1, 0), sampler(4))
    assert estimator.resets == [grow] and estimator.trainer.d_step == 1 + 1 and estimator.reset_pending


def _reward_latents(estimator, arch):
    """The latent vectors the reward of ``arch`` generates from."""
    latents = []
    handle = estimator.trainer.generator.register_forward_pre_hook(lambda module, args: latents.append(args[0]))
    estimator.evaluate([arch])
    handle.remove()
    return torch.cat(latents)


def test_every_reward_draws_fresh_latents_by_default_and_fixed_ones_on_request():
    """The official get_is draws new latent vectors for every reward; here they come
    from the seed, the round and the arch, so a rerun, a resumed or a distributed
    search draws the same ones."""
    arch, other = (SPACE.sample(random.Random(seed)) for seed in (0, 1))
    estimator = make_estimator()
    estimator.train_during_search(at(0), sampler(0))
    first = _reward_latents(estimator, arch)
    assert first.shape == (REWARD['num_images'], GAN['latent_dim']) and first.std() > 0.5
    assert torch.equal(_reward_latents(estimator, arch), first)  # the same reward again
    assert not torch.equal(_reward_latents(estimator, other), first)  # another arch's reward
    estimator.train_during_search(at(1), sampler(1))  # a controller step later, the same weights
    assert not torch.equal(_reward_latents(estimator, arch), first)
    resumed = make_estimator()
    resumed.load_state_dict(save_and_load(estimator.state_dict()))
    assert torch.equal(_reward_latents(resumed, arch), _reward_latents(estimator, arch))

    fixed = make_estimator(reward=dict(REWARD, noise='fixed'))
    fixed.train_during_search(at(0), sampler(0))
    once = _reward_latents(fixed, arch)
    fixed.train_during_search(at(1), sampler(1))
    assert torch.equal(_reward_latents(fixed, arch), once) and torch.equal(_reward_latents(fixed, other), once)
    with pytest.raises(NasError, match="estimator.reward.noise must be one of 'fresh', 'fixed', got 'new'"):
        make_estimator(reward=dict(REWARD, noise='new'))


@pytest.mark.parametrize('reset_window', [1, 500])
def test_resume_from_a_state_dict_equals_an_uninterrupted_run(reset_window):
    archs = [SPACE.sample(random.Random(seed)) for seed in range(2)]
    straight = make_estimator(reset_window=reset_window)
    straight_rewards = run_rounds(straight, range(6), archs)
    first = make_estimator(reset_window=reset_window)
    rewards = run_rounds(first, range(3), archs)
    resumed = make_estimator(reset_window=reset_window)
    resumed.load_state_dict(save_and_load(first.state_dict()))
    rewards += run_rounds(resumed, range(3, 6), archs)
    assert rewards == straight_rewards
    assert all(torch.equal(a, b) for a, b in zip(g_params(resumed), g_params(straight)))
    assert resumed.resets == straight.resets


def test_multi_level_search_end_to_end(tmp_path):
    sizes = set()
    estimator = ESTIMATORS.build(dict(
        type='AutoGANEstimator', space=SPACE, seed=2, gan=GAN, rounds_per_iteration=2,
        shared_d_steps=2, real_data=random_real_data(sizes), reward=REWARD))
    strategy = MultiLevelSearch(SPACE, stage_steps=[2, 2, 2], num_candidates=2, top_k=1, seed=0,
                                controller=dict(hidden_size=8, batch_size=1, allow_repeats=True))
    best = SearchLoop(SPACE, strategy, estimator, tmp_path, candidates_per_round=1,
                      score_name='IS').run()
    assert sizes == {8, 16, 32}  # shared training ran at every stage
    document = json.loads((tmp_path / 'best_arch.json').read_text())
    assert SPACE.is_complete(document['arch']) and document['arch'] == best['arch']
    generator = AutoGANGenerator(document['arch'], gf_dim=GAN['gf_dim'], latent_dim=GAN['latent_dim'])
    weights = torch.load(tmp_path / 'best_generator.pth', weights_only=True)
    generator.load_state_dict(weights)  # strict: exactly the arch's ops
    for picture in ('best_samples.png', 'best_generator.png', 'plots/controller_rewards.png'):
        assert (tmp_path / picture).read_bytes()[:4] == b'\x89PNG'
    samples = PIL.Image.open(tmp_path / 'best_samples.png')
    assert samples.size == (8 * 34 + 2, 8 * 34 + 2)  # 64 images of 32 px, 2 px apart
    top = json.loads((tmp_path / 'top_candidates.json').read_text())
    assert [entry['arch'] for entry in top] == [best['arch']]  # top_k=1 of the last stage
