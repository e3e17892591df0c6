"""AutoGAN final training under two gloo ranks draws different noise on every rank, and a
2-rank step is the 1-process step on the two ranks' batches concatenated in rank order.

The ranks run what ``tools/train.py --launcher pytorch`` runs for a step: the model
wrapped by mmengine's ``MMSeparateDistributedDataParallel`` (the config's
``model_wrapper_cfg``), one ``OptimWrapperDict``, ``train_step`` on each rank's slice of
the real batch, every rank seeded alike as mmengine's ``randomness`` without
``diff_rank_seed`` seeds them. The generator's BatchNorms are frozen (eval mode): in
training mode each rank normalises with its own slice's statistics, which no
concatenation reproduces. SGD, so that the weights move by the gradient itself (Adam's
first step is about lr x sign(gradient) and would hide most of a difference).
"""
import json

import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
from mmengine.model import MMSeparateDistributedDataParallel
from mmengine.optim import OptimWrapper, OptimWrapperDict
from torch import nn

from conftest import free_port, one_torch_thread

WORLD = 2
SEED = 7
LATENT = 16
LOCAL_BATCH = 4  # real images per rank and step; the D step's fakes match it
GEN_BATCH = 4  # latent vectors per rank for a G step
STEPS = 2  # a D and a G step (n_critic 1), twice: the ranks' RNGs stay in step
LR = 1e-3
# Measured: a 2-rank step and the 1-process step agree to about 1e-7 in the weights, 5e-7
# in the second step's fakes and 1e-6 relative in the losses (the order of float sums);
# the two steps move the weights by 0.1.
ATOL = 1e-5
LOSS_RTOL = 1e-5


def build_model(gen_batch_size: int, frozen_batch_norm: bool = True):
    from gan.autogan.final_training import AutoGANTrainingModel
    torch.manual_seed(SEED)  # mmengine's set_random_seed, the same seed on every rank
    model = AutoGANTrainingModel(
        generator=dict(type='AutoGANGenerator', arch='autogan_cifar10_c', gf_dim=8,
                       latent_dim=LATENT),
        discriminator=dict(type='AutoGANDiscriminator', df_dim=8),
        n_critic=1, gen_batch_size=gen_batch_size, ema_momentum=0.5)
    for module in model.generator.modules():
        if isinstance(module, nn.BatchNorm2d) and frozen_batch_norm:
            module.eval()
    return model


def optimisers(model) -> OptimWrapperDict:
    return OptimWrapperDict(**{name: OptimWrapper(torch.optim.SGD(getattr(model, name).parameters(), lr=LR))
                               for name in ('generator', 'discriminator')})


def full_real_batches() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return [torch.rand(WORLD * LOCAL_BATCH, 3, 32, 32, generator=generator) * 2 - 1
            for _ in range(STEPS)]


def train(model, network, real_batches) -> dict:
    """``STEPS`` train steps of ``network`` (the model or its wrapper); the fakes each G call
    made, the losses and the trained weights."""
    fakes = []
    model.generator.register_forward_hook(lambda module, args, output: fakes.append(output.detach()))
    optim = optimisers(model)
    losses = [{name: float(value) for name, value in network.train_step(dict(images=real), optim).items()}
              for real in real_batches]
    state = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()
             if tensor.is_floating_point()}
    return {'fakes': fakes, 'losses': losses, 'state': state}


def rank_worker(rank: int, port: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    torch_dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                                  world_size=WORLD)
    try:
        mine = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
        for frozen, name in ((True, 'rank'), (False, 'batch_norm_training_rank')):
            model = build_model(GEN_BATCH, frozen_batch_norm=frozen)
            wrapper = MMSeparateDistributedDataParallel(model, broadcast_buffers=False,
                                                        find_unused_parameters=False)
            torch.save(train(model, wrapper, [real[mine] for real in full_real_batches()]),
                       f'{out_dir}/{name}{rank}.pth')
    finally:
        torch_dist.destroy_process_group()


@pytest.fixture(scope='module')
def trained_on_ranks(tmp_path_factory) -> dict[str, list[dict]]:
    """What two ranks trained, with the generator's BatchNorms frozen and in training mode."""
    out_dir = tmp_path_factory.mktemp('rank_noise')
    mp.spawn(rank_worker, args=(free_port(), str(out_dir)), nprocs=WORLD)
    return {name: [torch.load(out_dir / f'{name}{rank}.pth', weights_only=True) for rank in range(WORLD)]
            for name in ('rank', 'batch_norm_training_rank')}


@pytest.fixture(scope='module')
def ranks(trained_on_ranks) -> list[dict]:
    return trained_on_ranks['rank']


@pytest.mark.slow  # two spawned processes
def test_every_rank_draws_its_own_noise_and_two_ranks_step_like_one_process(ranks):
    # Each step: the D step's fakes (no grad), then the G step's.
    assert all(len(rank['fakes']) == 2 * STEPS for rank in ranks)
    first = [rank['fakes'][0] for rank in ranks]
    assert first[0].shape == (LOCAL_BATCH, 3, 32, 32) and first[0].std() > 0
    # The discriminator sees as many distinct fakes as real images: no rank repeats another.
    assert not torch.allclose(first[0], first[1], atol=1e-3)
    # DDP keeps the two ranks' weights equal.
    assert all(torch.equal(ranks[0]['state'][name], ranks[1]['state'][name]) for name in ranks[0]['state'])

    with one_torch_thread():  # the ranks' thread count
        model = build_model(WORLD * GEN_BATCH)
        initial = {name: tensor.clone() for name, tensor in model.state_dict().items()
                   if tensor.is_floating_point()}
        one = train(model, model, full_real_batches())
    # The 1-process step on the concatenated batch made the ranks' fakes, in rank order ...
    for call, single in enumerate(one['fakes']):
        assert torch.allclose(torch.cat([rank['fakes'][call] for rank in ranks]), single, atol=ATOL)
    # ... and took the same step: its losses are the means of the ranks' (means over equal
    # halves), its weights the ranks' weights.
    for step in range(STEPS):
        for name in ('loss_d', 'loss_g'):
            mean = sum(rank['losses'][step][name] for rank in ranks) / WORLD
            assert mean == pytest.approx(one['losses'][step][name], rel=LOSS_RTOL)
    moved = max(float((one['state'][name] - initial[name]).abs().max()) for name in initial)
    assert moved > 100 * ATOL
    difference = max(float((ranks[0]['state'][name] - one['state'][name]).abs().max())
                     for name in initial)
    assert difference <= ATOL, json.dumps({'difference': difference, 'moved': moved})


@pytest.mark.slow  # two spawned processes
def test_ranks_hold_the_same_batch_norm_statistics(trained_on_ranks):
    """Each rank's BatchNorms normalise its own fakes; their running statistics are averaged,
    so the generator and its EMA are the same on every rank (rank 0 writes the checkpoints,
    every rank evaluates its share of the images)."""
    ranks = trained_on_ranks['batch_norm_training_rank']
    initial = build_model(GEN_BATCH, frozen_batch_norm=False).state_dict()
    statistics = [name for name in initial if name.endswith(('running_mean', 'running_var'))]
    assert any(name.startswith('generator.') for name in statistics)
    assert any(name.startswith('generator_ema.') for name in statistics)
    # Training moved them, differently on each rank's fakes ...
    assert all(not torch.equal(ranks[0]['state'][name], initial[name]) for name in statistics)
    assert not torch.allclose(ranks[0]['fakes'][0], ranks[1]['fakes'][0], atol=1e-3)
    # ... and every rank holds their average.
    assert all(torch.equal(ranks[0]['state'][name], ranks[1]['state'][name]) for name in ranks[0]['state'])
