"""The AutoGAN search under torchrun on CPU (gloo): data-parallel shared training and
rewards spread over the ranks give what one process gives.

Two processes are started twice: by torch.multiprocessing for the unit checks
(training steps, the reward split, a failure on one rank) and by torchrun for
a whole toy search compared with a one-process search.
"""
import json
import os
import random
import sys
from dataclasses import replace

import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
from torch import nn

from conftest import (ONE_THREAD, assert_scores_vary, free_port, one_torch_thread, read_candidates,
                      run_tool)
from gan.autogan import AutoGANEstimator, AutoGANSpace
from gan.autogan.distributed import inception_score_over_ranks
from gan.autogan.estimator import PathSampler
from gan.autogan.shared_training import SharedGANSettings, SharedGANTrainer
from nas_tasks import dist
from nas_tasks.errors import NasError

WORLD = 2
SPACE = AutoGANSpace()
# No reset (a variance is never below 0); the window keeps every loss for the comparison.
SETTINGS = SharedGANSettings(gf_dim=8, df_dim=8, latent_dim=8, gen_batch_size=32, dis_batch_size=16,
                             reset_window=50, reset_threshold=0.0, seed=3)
D_STEPS = 11  # G steps at D steps 0, 5 and 10
IMAGE_SIZE = 32  # whole archs: every cell, BN in some of them and always in to_rgb
# 250 images in batches of 100: rank 0 generates 2 batches, rank 1 the last 50 images;
# 100 images: one batch, rank 1 has nothing to give.
NUM_IMAGES = (250, 100)
SCORED_ARCHS = [SPACE.sample(random.Random(seed)) for seed in range(3)]
FAILURE = 'out of memory (simulated)'
BN_MODES = ('frozen_bn', 'batch_bn')
# With the generator's BatchNorms frozen (eval mode), 2 ranks compute the full batch's
# step but for the order of float sums: measured after 11 steps, weights within 1.2e-7,
# full-batch losses within 3e-6. (Taking the first half of the batch on both ranks
# instead gives weight differences of 1e-3 and loss differences of 0.1.)
FROZEN_BN_ATOL = 1e-5
# In training mode each rank's BatchNorm normalises with its half batch's statistics:
# measured after 11 steps, weights and running statistics within 1.7e-2; the losses,
# computed on the generator's output, differ by up to 0.16 (D) and 0.4 (G), so there only
# the weights are compared.
BATCH_BN_ATOL = 5e-2


# --- what every process runs, one process or each of two ranks ------------------------------

def real_batches():
    """This rank's slices of the batches, as the estimator's real data serves them."""
    generator = torch.Generator().manual_seed(0)
    while True:
        batch = torch.rand(SETTINGS.dis_batch_size, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator) * 2 - 1
        yield dist.local_slice(batch)


def train_tiny(mode: str) -> SharedGANTrainer:
    trainer = SharedGANTrainer(SETTINGS, SPACE)
    if mode == 'frozen_bn':
        for module in trainer.generator.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
    rng = random.Random(0)
    # No InstanceNorm: it makes the gradient of the conv bias before it zero in exact
    # arithmetic, so what is computed is rounding noise, which Adam scales to steps of
    # about lr and which would differ between any two ways of summing.
    archs = [{key: 'bn' if value == 'in' else value for key, value in SPACE.sample(rng).items()}
             for _ in range(D_STEPS)]
    report = trainer.train_steps(D_STEPS, real_batches(), iter(archs).__next__)
    assert report.d_steps == D_STEPS and not report.reset_needed
    return trainer


def tiny_estimator(data_root, num_images: int) -> AutoGANEstimator:
    """Untrained, so every process holds the same generator (seeded)."""
    return AutoGANEstimator(
        SPACE, seed=0, gan=dict(gf_dim=8, df_dim=8, latent_dim=8, gen_batch_size=8, dis_batch_size=4),
        real_data=dict(type='GANImages', source='cifar10_batches', data_root=str(data_root)),
        device='cpu',
        reward=dict(num_images=num_images, splits=5, batch_size=100,
                    extractor=dict(type='ToyClassifier', weights_path=f'{data_root}/toy_classifier.pth')))


class FailingOnRank:
    """A reward sampler whose generation fails on one rank only."""

    def __init__(self, sampler: PathSampler, rank: int):
        self.sampler, self.rank = sampler, rank

    def noise(self, n):
        return self.sampler.noise(n)

    def generate(self, z):
        if dist.get_rank() == self.rank:
            raise RuntimeError(FAILURE)
        return self.sampler.generate(z)


def rank_worker(rank: int, port: str, out_dir: str, data_root: str) -> None:
    torch.set_num_threads(1)
    torch_dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                                  world_size=WORLD)
    try:
        for mode in BN_MODES:
            torch.save(train_tiny(mode).state_dict(), f'{out_dir}/{mode}-{rank}.pth')
        record = {'scores': {}}
        for num_images in NUM_IMAGES:
            estimator = tiny_estimator(data_root, num_images)
            record['collective'] = estimator.evaluates_collectively
            record['scores'][num_images] = [result.score for result in estimator.evaluate(SCORED_ARCHS)]
        estimator = tiny_estimator(data_root, NUM_IMAGES[0])  # rank 1 generates a batch
        generator = estimator.trainer.generator
        generator.set_arch(SCORED_ARCHS[0])
        generator.eval()
        try:
            inception_score_over_ranks(estimator.inception_score,
                                       FailingOnRank(PathSampler(generator, 8, 'cpu', 0), rank=1))
        except Exception as error:  # noqa: BLE001  (recorded for the test)
            record['failure'] = f'{type(error).__name__}: {error}'
        # The ranks still pair their collectives after the failure.
        record['after_failure'] = estimator.evaluate(SCORED_ARCHS[:1])[0].score
        with open(f'{out_dir}/rank{rank}.json', 'w') as file:
            json.dump(record, file)
    except BaseException:
        torch_dist.destroy_process_group()
        raise
    # Both ranks have written their records: leave without the teardown of gloo's threads,
    # which under load once aborted a rank (SIGABRT, "terminate called without an active
    # exception") after its work was done, failing the whole module's fixture.
    torch_dist.barrier()
    os._exit(0)


@pytest.fixture(scope='module')
def two_ranks(toy_cifar10, tmp_path_factory):
    """What each of two gloo ranks trained and scored: (state dicts by mode, records)."""
    out_dir = tmp_path_factory.mktemp('two_ranks')
    mp.spawn(rank_worker, args=(free_port(), str(out_dir), str(toy_cifar10)), nprocs=WORLD)
    states = {mode: [torch.load(out_dir / f'{mode}-{rank}.pth', weights_only=True)
                     for rank in range(WORLD)] for mode in BN_MODES}
    records = [json.loads((out_dir / f'rank{rank}.json').read_text()) for rank in range(WORLD)]
    return states, records


# --- data-parallel shared training -----------------------------------------------------------

def network_tensors(state: dict) -> dict[str, torch.Tensor]:
    return {f'{net}.{name}': tensor for net in ('generator', 'discriminator')
            for name, tensor in state[net].items() if tensor.is_floating_point()}


def max_difference(a: dict, b: dict) -> float:
    return max(float((a[name] - b[name]).abs().max()) for name in a)


def compare_with_one_process(two_ranks, mode: str, atol: float) -> None:
    states, _ = two_ranks
    rank0, rank1 = states[mode]
    # The ranks hold the same GAN (BatchNorm statistics too), bit for bit: rank 0 alone
    # writes the checkpoints, and every rank decides the dynamic reset alike.
    assert max_difference(network_tensors(rank0), network_tensors(rank1)) == 0
    assert rank0['dynamic_reset'] == rank1['dynamic_reset']
    with one_torch_thread():  # the ranks' thread count, so float sums run in the same order
        one = train_tiny(mode).state_dict()
        initial = SharedGANTrainer(SETTINGS, SPACE).state_dict()
    # Training moved the weights far more than the tolerance, so agreeing within it means something.
    assert max_difference(network_tensors(one), network_tensors(initial)) > 3 * atol
    assert max_difference(network_tensors(rank0), network_tensors(one)) <= atol
    # The full batch's noise was drawn on every rank: the same RNG state as one process.
    assert torch.equal(rank0['rng'], one['rng'])
    # The dynamic-reset windows hold the full-batch losses.
    for window in ('d_losses', 'g_losses'):
        ranked, single = rank0['dynamic_reset'][window], one['dynamic_reset'][window]
        assert len(ranked) == len(single) == {'d_losses': D_STEPS, 'g_losses': 3}[window]
        if mode == 'frozen_bn':
            assert ranked == pytest.approx(single, abs=atol)


@pytest.mark.slow
def test_two_ranks_step_like_one_process_on_the_full_batch(two_ranks):
    compare_with_one_process(two_ranks, 'frozen_bn', FROZEN_BN_ATOL)


@pytest.mark.slow
def test_with_batch_norm_training_two_ranks_stay_equal_and_close_to_one_process(two_ranks):
    compare_with_one_process(two_ranks, 'batch_bn', BATCH_BN_ATOL)


def test_batch_sizes_that_do_not_split_over_the_ranks_are_refused(monkeypatch):
    monkeypatch.setattr(dist, 'get_world_size', lambda: 2)
    with pytest.raises(NasError, match=r'must divide by 2: change estimator.gan dis_batch_size=5$'):
        SharedGANTrainer(replace(SETTINGS, dis_batch_size=5), SPACE)


def test_rank_range_splits_contiguously_in_rank_order():
    assert [dist.rank_range(5, rank, 2) for rank in range(2)] == [range(0, 3), range(3, 5)]
    assert [dist.rank_range(1, rank, 3) for rank in range(3)] == [range(0, 1), range(1, 1), range(1, 1)]
    assert dist.rank_range(7) == range(0, 7)  # no process group: everything


# --- rewards spread over the ranks -----------------------------------------------------------

@pytest.mark.slow
def test_rewards_from_two_ranks_equal_those_of_one_process(two_ranks, toy_cifar10):
    _, records = two_ranks
    assert all(record['collective'] for record in records)
    for num_images in NUM_IMAGES:
        with one_torch_thread():  # the ranks' thread count, so float sums run in the same order
            estimator = tiny_estimator(toy_cifar10, num_images)
            single = [result.score for result in estimator.evaluate(SCORED_ARCHS)]
        assert not estimator.evaluates_collectively
        assert len(set(single)) == len(SCORED_ARCHS)
        # The same images, gathered in order: the same score, on every rank.
        for record in records:
            assert record['scores'][str(num_images)] == single


@pytest.mark.slow
def test_a_failure_on_one_rank_fails_the_reward_on_every_rank(two_ranks):
    _, records = two_ranks
    assert records[1]['failure'] == f'RuntimeError: {FAILURE}'
    assert records[0]['failure'] == f'RuntimeError: rank 1 failed: RuntimeError: {FAILURE}'
    assert records[0]['after_failure'] == records[1]['after_failure'] == records[0]['scores'][str(NUM_IMAGES[0])][0]


# --- the whole toy search under torchrun ------------------------------------------------------

# The rewards of a 2-process search differ from one process's only through the generator's
# BatchNorms, which normalise with the statistics of each rank's half batch (the rewards
# themselves are computed exactly, see above). Measured with the shrunk toy search: at
# most 0.4% (IS 1.2304 against 1.2350), most below 0.1%; the rewards range over 1.0-1.6.
REWARD_RTOL = 1e-2


@pytest.mark.slow
def test_two_processes_search_like_one(autogan_search, tmp_path):
    """The session's one-process toy search against the same search under torchrun."""
    one_dir, two_dir = autogan_search.work_dir, tmp_path / 'two'
    run_tool([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', str(WORLD),
              '--master_port', free_port(), *autogan_search.command(two_dir)[1:],
              '--launcher', 'pytorch'], env_extra=ONE_THREAD, check=True)
    one, two = read_candidates(one_dir), read_candidates(two_dir)
    assert_scores_vary(one)
    assert [c['arch'] for c in two] == [c['arch'] for c in one]
    for single, parallel in zip(one, two):
        assert parallel['score'] == pytest.approx(single['score'], rel=REWARD_RTOL)
    best = [json.loads((work_dir / 'best_arch.json').read_text())['arch'] for work_dir in (one_dir, two_dir)]
    assert best[0] == best[1]
    # Every rank pushed the full-batch losses into its windows: the resets came at the same rounds.
    resets = [torch.load(work_dir / 'search_state.pth', weights_only=True)['estimator']['resets']
              for work_dir in (one_dir, two_dir)]
    assert len(resets[0]) >= 2 and resets[0] == resets[1]
