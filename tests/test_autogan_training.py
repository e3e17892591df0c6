"""AutoGAN shared-GAN training and dynamic reset, at tiny widths (gf = df = 8, 8 px)."""
import io
import itertools
import random
from dataclasses import replace

import pytest
import torch

from gan.autogan.dynamic_reset import DynamicReset, population_variance
from gan.autogan.shared_training import (SharedGANSettings, SharedGANTrainer, hinge_d_loss,
                                         hinge_g_loss)
from gan.autogan.space import AutoGANSpace
from nas_tasks.errors import NasError

SPACE = AutoGANSpace()
TINY = SharedGANSettings(gf_dim=8, df_dim=8, latent_dim=8, gen_batch_size=4, dis_batch_size=2,
                         reset_window=4, seed=3)


def save_and_load(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def stage0_sampler(seed=0):
    rng = random.Random(seed)
    return lambda: SPACE.prefix(SPACE.sample(rng), 0)


def real_batches(size=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    while True:
        yield torch.rand(TINY.dis_batch_size, 3, size, size, generator=generator) * 2 - 1


def g_params(trainer):
    return [p.detach().clone() for p in trainer.generator.parameters()]


# --- dynamic reset -------------------------------------------------------------------------

def test_population_variance_divides_by_count():
    assert population_variance([1.0, 3.0]) == 1.0


def filled(g_losses, d_losses, window=4):
    reset = DynamicReset(window=window, threshold=1e-3)
    for loss in d_losses:
        reset.push_d_loss(loss)
    for loss in g_losses:
        reset.push_g_loss(loss)
    return reset


def test_fires_on_a_flat_g_window_only_once_it_is_full():
    assert not filled([0.5] * 3, [0.0, 1.0, 2.0]).should_reset()
    assert filled([0.5] * 4, [0.0, 1.0, 2.0]).should_reset()


def test_fires_on_a_flat_d_window():
    assert filled([0.0, 1.0, 2.0, 3.0], [1.2] * 4).should_reset()


def test_does_not_fire_on_varied_windows():
    assert not filled([0.0, 1.0, 2.0, 3.0, 4.0], [1.0, -1.0, 0.5, 2.0]).should_reset()


def test_clear_empties_both_windows():
    reset = filled([0.5] * 4, [1.0] * 4)
    reset.clear()
    assert not reset.should_reset() and not reset.g_losses and not reset.d_losses


def test_windows_round_trip_through_torch_save():
    reset = filled([0.0, 1.0, 2.0, 3.0, 4.0], [1.0, -1.0, 0.5])
    restored = DynamicReset(window=99, threshold=5.0)
    restored.load_state_dict(save_and_load(reset.state_dict()))
    assert restored.state_dict() == reset.state_dict()
    assert list(restored.g_losses) == [1.0, 2.0, 3.0, 4.0]  # the window keeps its maxlen
    restored.push_g_loss(5.0)
    assert list(restored.g_losses) == [2.0, 3.0, 4.0, 5.0]


# --- hinge losses ---------------------------------------------------------------------------

def test_hinge_losses_equal_hand_computed_values():
    real = torch.tensor([[2.0], [0.5], [-1.0]])  # relu(1 - x): 0, 0.5, 2 -> mean 2.5 / 3
    fake = torch.tensor([[-2.0], [0.0], [1.0]])  # relu(1 + x): 0, 1, 2 -> mean 1
    assert hinge_d_loss(real, fake).item() == pytest.approx(2.5 / 3 + 1.0)
    assert hinge_g_loss(fake).item() == pytest.approx(1 / 3)


# --- trainer ----------------------------------------------------------------------------------

def test_g_steps_every_n_critic_d_steps_of_each_iteration():
    """D steps 0, 5, 10 of every train_steps call (a search iteration): the official
    ``step`` restarts at 0 every iteration, so an iteration that a reset cut short
    (here 7 D steps) does not shift the next one's G steps."""
    trainer = SharedGANTrainer(replace(TINY, reset_window=1000))  # no reset stops a call early
    batches, sample = real_batches(), stage0_sampler()
    generator_steps = []
    trainer._g_step = lambda original=trainer._g_step: (generator_steps.append(trainer.d_step), original())[1]
    trainer.train_steps(11, batches, sample)
    trainer.train_steps(7, batches, sample)
    trainer.train_steps(6, batches, sample)
    assert generator_steps == [0, 5, 10, 11, 16, 18, 23]


def test_discriminator_follows_the_sampled_stage():
    trainer = SharedGANTrainer(TINY)
    rng = random.Random(1)
    arch = SPACE.prefix(SPACE.sample(rng), 1)
    trainer.train_steps(1, real_batches(size=16), lambda: arch)
    assert trainer.discriminator.cur_stage == 1 and trainer.generator.cur_stage == 1
    whole = SPACE.sample(rng)
    trainer.train_steps(1, real_batches(size=32), lambda: whole)
    assert trainer.discriminator.cur_stage == 2


def test_real_images_of_the_wrong_size_are_refused():
    with pytest.raises(NasError, match='8 px'):
        SharedGANTrainer(TINY).train_steps(1, real_batches(size=16), stage0_sampler())


def test_a_non_finite_loss_stops_training_before_the_step_with_one_line():
    trainer = SharedGANTrainer(TINY)
    trainer.train_steps(2, real_batches(), stage0_sampler())
    before = [p.detach().clone() for p in trainer.discriminator.parameters()]

    def poisoned():
        while True:
            yield torch.full((TINY.dis_batch_size, 3, 8, 8), float('nan'))
    with pytest.raises(NasError, match=r'the shared GAN diverged: a loss of nan at D step 2; '
                                       r'lower the learning rate'):
        trainer.train_steps(1, poisoned(), stage0_sampler())
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.discriminator.parameters()))


def test_training_stops_and_reports_when_the_reset_fires():
    trainer = SharedGANTrainer(replace(TINY, reset_window=2, reset_threshold=1e9))
    report = trainer.train_steps(50, real_batches(), stage0_sampler())
    # The G window (2) fills at the 2nd G step, D step 5 (G steps at 0 and 5): the 6th D step.
    assert report.reset_needed and report.d_steps == 6
    assert not trainer.dynamic_reset.g_losses  # cleared on detection


def test_reset_gives_fresh_weights_and_training_goes_on():
    trainer = SharedGANTrainer(TINY)
    batches, sample = real_batches(), stage0_sampler()
    trainer.train_steps(6, batches, sample)
    before_g, before_d = g_params(trainer), trainer.discriminator.state_dict()
    trainer.reset()
    assert trainer.reset_log == [6]
    # Every weight tensor is redrawn (zero-initialised biases stay zero).
    assert all(not torch.equal(a, b) for a, b in zip(before_g, g_params(trainer)) if a.dim() > 1)
    after_d = trainer.discriminator.state_dict()
    assert not torch.equal(before_d['l5.parametrizations.weight.original'],
                           after_d['l5.parametrizations.weight.original'])
    assert not trainer.g_optimizer.state and not trainer.d_optimizer.state
    report = trainer.train_steps(6, batches, sample)
    assert report.d_steps == 6 and trainer.g_optimizer.state and trainer.d_optimizer.state


def test_state_dict_round_trip_continues_exactly():
    uninterrupted, resumed = SharedGANTrainer(TINY), SharedGANTrainer(replace(TINY, seed=9))
    batches, sample = real_batches(), stage0_sampler()
    uninterrupted.train_steps(7, batches, sample)
    uninterrupted.reset()
    uninterrupted.train_steps(3, batches, sample)
    resumed.load_state_dict(save_and_load(uninterrupted.state_dict()))
    # Both continue on the same batches and architectures.
    batches_a, batches_b = itertools.tee(batches)
    sample_seed = random.Random(5)
    archs = [SPACE.prefix(SPACE.sample(sample_seed), 0) for _ in range(8)]
    uninterrupted.train_steps(8, batches_a, iter(archs).__next__)
    resumed.train_steps(8, batches_b, iter(archs).__next__)
    assert all(torch.equal(a, b) for a, b in zip(g_params(uninterrupted), g_params(resumed)))
    assert resumed.reset_log == uninterrupted.reset_log == [7]
    assert resumed.dynamic_reset.state_dict() == uninterrupted.dynamic_reset.state_dict()


def test_a_state_trained_on_another_world_size_is_refused_unless_allowed():
    from nas_tasks.world_size import WORLD_SIZE_KEY, allow_world_size_change
    trained = SharedGANTrainer(TINY)
    trained.train_steps(3, real_batches(), stage0_sampler())
    state = save_and_load(trained.state_dict())
    assert state[WORLD_SIZE_KEY] == 1  # no process group: one process
    state[WORLD_SIZE_KEY] = 4  # as a search on four processes saved it
    resumed = SharedGANTrainer(replace(TINY, seed=9))
    untouched = g_params(resumed)
    with pytest.raises(NasError) as error:
        resumed.load_state_dict(state)
    assert str(error.value) == (
        'the search checkpoint search_state.pth holds the shared GAN trained on 4 process(es), '
        "but this run has 1: its total batch stays, but each process would take its BatchNorms' "
        'statistics over another slice of it. '
        'Resume it on 4 process(es), or pass --allow-world-size-change to go on anyway')
    assert all(torch.equal(a, b) for a, b in zip(g_params(resumed), untouched))  # nothing loaded
    allow_world_size_change(True)
    try:
        resumed.load_state_dict(state)
    finally:
        allow_world_size_change(False)
    assert all(torch.equal(a, b) for a, b in zip(g_params(resumed), g_params(trained)))
    assert not all(torch.equal(a, b) for a, b in zip(untouched, g_params(trained)))
