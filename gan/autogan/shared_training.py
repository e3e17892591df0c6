"""The shared-GAN training of the AutoGAN search (reference sheet 2.1 and 2.5).

:class:`SharedGANTrainer` holds the shared generator, the discriminator, their
Adam optimisers, the dynamic-reset windows, a log of resets and its own
``torch.Generator``, from which all noise and all fresh weights are drawn, so a
search restored from :meth:`SharedGANTrainer.state_dict` continues exactly.

Each minibatch trains one architecture drawn by ``sample_arch()`` (the core's
``Estimator.train_during_search`` passes one): a D step on every minibatch
and a G step on every ``n_critic``-th (D steps 0, 5, 10, ... of each
:meth:`SharedGANTrainer.train_steps` call, a search iteration's training: the
official ``step`` restarts at 0 every iteration), both with the hinge loss.
The discriminator runs the stage of the drawn architecture.

Under torchrun each rank trains on its slice of every batch and the gradients
are averaged over the ranks (:mod:`gan.autogan.distributed` says how and why).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import _SpectralNorm

from gan.autogan.discriminator import AutoGANDiscriminator
from gan.autogan.distributed import DataParallelSteps
from gan.autogan.dynamic_reset import THRESHOLD, WINDOW, DynamicReset
from gan.autogan.shared_generator import AutoGANSharedGenerator
from gan.autogan.space import AutoGANSpace
from nas_tasks.errors import NasError
from nas_tasks.space import Arch
from nas_tasks.workdir import CHECKPOINT_NAME
from nas_tasks.world_size import WORLD_SIZE_KEY, check_resumed_world_size, current_world_size


@dataclass(frozen=True)
class SharedGANSettings:
    """The official search's settings (widths gf 128 / df 64 in the search)."""
    gf_dim: int = 128
    df_dim: int = 64
    latent_dim: int = 128
    bottom_width: int = 4
    lr: float = 2e-4
    betas: tuple[float, float] = (0.0, 0.9)
    n_critic: int = 5
    gen_batch_size: int = 128
    dis_batch_size: int = 64  # the real batch size; the fake batch of a D step matches it
    reset_window: int = WINDOW
    reset_threshold: float = THRESHOLD
    seed: int = 0


class TrainReport(NamedTuple):
    """What :meth:`SharedGANTrainer.train_steps` did."""
    d_steps: int  # D steps run; fewer than asked when a collapse stopped training
    reset_needed: bool  # the dynamic reset fired: call reset() (after the controller's turn)
    d_loss: float | None  # the last D hinge loss, None when no step ran
    g_loss: float | None  # the last G loss, None when no G step ran


def hinge_d_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()


def hinge_g_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    return -fake_scores.mean()


def init_weights(module: nn.Module) -> None:
    """The official ``weights_init`` (``--init_type xavier_uniform``, search and final
    training alike): xavier-uniform (gain 1) weights of every ``Conv2d``, BN weight
    ~ N(1, 0.02) and bias 0. The official test is on the class name ("Conv2d" in it),
    so transposed convs and linear layers keep torch's default initialisation, here too.

    A spectral-normed conv is torch's parametrized subclass of ``Conv2d``
    (``ParametrizedConv2d``): its raw weight is initialised, as the official
    ``m.weight.data``, which the old spectral-norm hook aliases to ``weight_orig``
    until the first forward pass."""
    for sub in module.modules():
        if isinstance(sub, nn.Conv2d):
            _xavier_uniform(sub)
        elif isinstance(sub, nn.BatchNorm2d):
            nn.init.normal_(sub.weight, 1.0, 0.02)
            nn.init.zeros_(sub.bias)


def _xavier_uniform(conv: nn.Conv2d) -> None:
    if not parametrize.is_parametrized(conv, 'weight'):
        nn.init.xavier_uniform_(conv.weight)
        return
    weight = conv.parametrizations.weight.original
    nn.init.xavier_uniform_(weight)
    for parametrization in conv.parametrizations.weight:
        if isinstance(parametrization, _SpectralNorm):
            # Applying spectral norm ran 15 power iterations on the default weights;
            # its u and v would give the new ones a spectral norm near 0 (they are
            # unrelated vectors of it). Run them again, as for a freshly built layer.
            parametrization._power_method(parametrization._reshape_weight_to_matrix(weight), 15)


class SharedGANTrainer:
    """The shared G and D of the search, trained one sampled architecture per minibatch."""

    def __init__(self, settings: SharedGANSettings = SharedGANSettings(),
                 space: AutoGANSpace | None = None, device: str | torch.device = 'cpu'):
        self.settings = settings
        self.space = space or AutoGANSpace()
        self.device = torch.device(device)
        self.rng = torch.Generator().manual_seed(settings.seed)
        self.dynamic_reset = DynamicReset(settings.reset_window, settings.reset_threshold)
        self.d_step = 0  # D steps since the start of the search; the G step follows it
        self.reset_log: list[int] = []  # the D step of every reset, for the plots
        self.data_parallel = DataParallelSteps({'gen_batch_size': settings.gen_batch_size,
                                                'dis_batch_size': settings.dis_batch_size})
        self._build()

    def _build(self) -> None:
        """Fresh G, D and optimisers, their weights drawn from ``self.rng``."""
        seed = int(torch.randint(2 ** 62, (1,), generator=self.rng))
        with torch.random.fork_rng(devices=[]):  # leaves the global RNG alone
            torch.manual_seed(seed)
            s = self.settings
            self.generator = AutoGANSharedGenerator(s.gf_dim, s.latent_dim, s.bottom_width)
            self.discriminator = AutoGANDiscriminator(s.df_dim)
            init_weights(self.generator)
            init_weights(self.discriminator)
        self.generator.to(self.device).train()
        self.discriminator.to(self.device).train()
        self.g_optimizer = self._adam(self.generator)
        self.d_optimizer = self._adam(self.discriminator)

    def _adam(self, network: nn.Module) -> torch.optim.Adam:
        return torch.optim.Adam(network.parameters(), lr=self.settings.lr, betas=self.settings.betas)

    def reset(self) -> None:
        """The dynamic reset: re-create G, D and both optimisers (the controller is not ours)."""
        self.reset_log.append(self.d_step)
        self.dynamic_reset.clear()
        self._build()

    def train_steps(self, num_d_steps: int, real_batches: Iterator[torch.Tensor],
                    sample_arch: Callable[[], Arch]) -> TrainReport:
        """Up to ``num_d_steps`` D steps on batches of ``real_batches`` (in [-1, 1], at the
        drawn architecture's stage resolution; under torchrun each rank's slice of the
        batch, as :class:`gan.autogan.real_data.RealImageBatches` serves it); stops early
        when the dynamic reset fires."""
        d_loss = g_loss = None
        for done in range(1, num_d_steps + 1):
            self._select(sample_arch())
            d_loss = self._d_step(next(real_batches).to(self.device))
            # Counted within the call, as the official step, so a reset that cut the
            # last iteration short does not shift this one's G steps.
            if (done - 1) % self.settings.n_critic == 0:
                g_loss = self._g_step()
            self.d_step += 1
            if self.dynamic_reset.should_reset():
                self.dynamic_reset.clear()
                return TrainReport(done, True, d_loss, g_loss)
        return TrainReport(num_d_steps, False, d_loss, g_loss)

    def _select(self, arch: Arch) -> None:
        self.generator.set_arch(arch)
        self.discriminator.cur_stage = self.space.stage_of(arch)

    def image_size(self) -> int:
        """The resolution of the selected stage: 8, 16 or 32 px at CIFAR-10 size."""
        return self.settings.bottom_width * 2 ** (self.generator.cur_stage + 1)

    def _noise(self, batch_size: int) -> torch.Tensor:
        z = torch.randn(batch_size, self.settings.latent_dim, generator=self.rng)
        return z.to(self.device)

    def _d_step(self, real: torch.Tensor) -> float:
        """A D step on ``real``, this rank's slice of a batch of ``dis_batch_size``."""
        local_batch = self.settings.dis_batch_size // self.data_parallel.world
        if real.shape[-2:] != (self.image_size(),) * 2 or real.shape[0] != local_batch:
            raise NasError(f'stage {self.generator.cur_stage} trains on {local_batch} real images '
                           f'of {self.image_size()} px per process, got a batch of shape '
                           f'{tuple(real.shape)}')
        # The full batch's noise on every rank, so that self.rng stays the same on all.
        with torch.no_grad():
            fake = self.generator(self.data_parallel.local(self._noise(self.settings.dis_batch_size)))
        loss = hinge_d_loss(self.discriminator(real), self.discriminator(fake))
        return self._descend(loss, self.d_optimizer, self.dynamic_reset.push_d_loss)

    def _g_step(self) -> float:
        fake = self.generator(self.data_parallel.local(self._noise(self.settings.gen_batch_size)))
        loss = hinge_g_loss(self.discriminator(fake))
        return self._descend(loss, self.g_optimizer, self.dynamic_reset.push_g_loss)

    def _descend(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer,
                 push_to_window: Callable[[float], None]) -> float:
        """One optimiser step on ``loss``, whose (full-batch) value goes into its dynamic-reset window."""
        optimizer.zero_grad()
        loss.backward()
        value = self.data_parallel.synchronise(loss, optimizer, self.generator)
        if not math.isfinite(value):
            # Before the step: the weights stay as they were, and the last round
            # checkpoint holds a GAN that trained well.
            raise NasError(f'the shared GAN diverged: a loss of {value} at D step {self.d_step}; '
                           'lower the learning rate (estimator.gan.lr) and continue from the '
                           'last round with --resume')
        optimizer.step()
        push_to_window(value)
        return value

    def state_dict(self) -> dict:
        """Everything a resumed search needs; loadable with ``torch.load(weights_only=True)``."""
        return {'generator': self.generator.state_dict(),
                'discriminator': self.discriminator.state_dict(),
                'g_optimizer': self.g_optimizer.state_dict(),
                'd_optimizer': self.d_optimizer.state_dict(),
                'dynamic_reset': self.dynamic_reset.state_dict(),
                'd_step': self.d_step,
                'reset_log': list(self.reset_log),
                'rng': self.rng.get_state(),
                # gen/dis_batch_size are totals, but each rank's BatchNorms take their
                # statistics over its slice: another world size changes the slices.
                WORLD_SIZE_KEY: current_world_size()}

    def load_state_dict(self, state: dict) -> None:
        """Restores a :meth:`state_dict`; one written on another number of processes is
        refused (:func:`nas_tasks.world_size.check_resumed_world_size`) before anything loads."""
        check_resumed_world_size(state.get(WORLD_SIZE_KEY), 'the shared GAN',
                                 f'the search checkpoint {CHECKPOINT_NAME}',
                                 change='its total batch stays, but each process would take '
                                 "its BatchNorms' statistics over another slice of it")
        self.generator.load_state_dict(state['generator'])
        self.discriminator.load_state_dict(state['discriminator'])
        self.g_optimizer.load_state_dict(state['g_optimizer'])
        self.d_optimizer.load_state_dict(state['d_optimizer'])
        self.dynamic_reset.load_state_dict(state['dynamic_reset'])
        self.d_step = int(state['d_step'])
        self.reset_log = [int(step) for step in state['reset_log']]
        self.rng.set_state(state['rng'])
