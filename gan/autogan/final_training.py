"""Training a found AutoGAN generator from scratch through mmengine's Runner (reference sheet 3.3).

:class:`AutoGANTrainingModel` holds the generator, the discriminator and an
exponential moving average (EMA) of the generator's weights. One runner
iteration is one D step on a batch of real images; every ``n_critic``-th
(D steps 0, n_critic, 2 n_critic, ...) is followed by a G step on
``gen_batch_size`` fresh latent vectors, both with the hinge loss and each
with its own optimiser of an ``OptimWrapperDict`` (``generator``,
``discriminator``). After every G step the EMA moves towards the generator:
``ema = (1 - m) * ema + m * p`` with ``m = ema_momentum`` (0.001, the
official 0.999 decay); evaluation and sampling use the EMA weights.

Why the EMA lives in the model and not in mmengine's ``EMAHook``: the hook
averages the whole model (the discriminator too) after every runner
iteration, and swaps weights around checkpoints. Here it must follow the G
steps only and cover the generator only; as a submodule without gradients it
is saved in every checkpoint's ``state_dict`` (so ``tools/test.py`` and
``--resume`` find it with nothing else), and
``MMSeparateDistributedDataParallel`` leaves it unwrapped under torchrun.
As in the official code it starts from the initial weights and averages the
parameters only; its buffers (BN running statistics) are the generator's.
"""
from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import Iterator

import torch
from mmengine.model import BaseModel, ExponentialMovingAverage, is_model_wrapper
from mmengine.optim import OptimWrapperDict
from mmengine.registry import MODELS
from torch import nn

from gan.autogan.distributed import batch_norm_statistics
from gan.autogan.shared_training import hinge_d_loss, hinge_g_loss, init_weights
from gan.metrics import quantise
from nas_tasks import dist
from nas_tasks.errors import NasError
from nas_tasks.validation import check_positive

NETWORKS = ('generator', 'discriminator')  # the OptimWrapperDict's keys


def unwrap(network: nn.Module) -> nn.Module:
    """The network inside a DDP wrapper (``MMSeparateDistributedDataParallel`` wraps each one)."""
    return network.module if is_model_wrapper(network) else network


def drop_wrapper_prefixes(module: nn.Module, state_dict: dict, prefix: str,
                          local_metadata: dict) -> None:
    """A ``state_dict`` post-hook: ``<net>.module.<key>`` of a DDP-wrapped child becomes
    ``<net>.<key>``, the names a single process has and mmengine's loader expects (it
    looks through wrappers), so checkpoints of a torchrun run load anywhere."""
    for name, child in module.named_children():
        if not is_model_wrapper(child):
            continue
        wrapped = f'{prefix}{name}.module'
        for key in [key for key in state_dict if key.startswith(wrapped + '.')]:
            state_dict[f'{prefix}{name}{key[len(wrapped):]}'] = state_dict.pop(key)
        metadata = getattr(state_dict, '_metadata', {})
        for key in [key for key in metadata if key == wrapped or key.startswith(wrapped + '.')]:
            metadata[f'{prefix}{name}{key[len(wrapped):]}'] = metadata.pop(key)


@contextmanager
def frozen(network: nn.Module) -> Iterator[None]:
    """``network`` takes no gradient inside: the G step must not leave gradients in D.

    Under DDP it also runs without gradient synchronisation, so the wrapper
    does not wait for gradients that never come.
    """
    trainable = [p for p in network.parameters() if p.requires_grad]
    for parameter in trainable:
        parameter.requires_grad_(False)
    try:
        with network.no_sync() if hasattr(network, 'no_sync') else nullcontext():
            yield
    finally:
        for parameter in trainable:
            parameter.requires_grad_(True)


@MODELS.register_module()
class AutoGANTrainingModel(BaseModel):
    """A generator and a discriminator trained with the hinge loss, and the generator's EMA.

    Args:
        generator: config of the generator (e.g. ``dict(type='AutoGANGenerator',
            arch='autogan_cifar10_a', gf_dim=256)``); it must have ``latent_dim``.
        discriminator: config of the discriminator (e.g.
            ``dict(type='AutoGANDiscriminator', df_dim=128)``).
        n_critic: D steps per G step.
        gen_batch_size: latent vectors per G step (the D step's fake batch
            matches its real batch).
        ema_momentum: the weight of the new generator weights in each EMA update.

    Batches are ``dict(images=...)`` for training and ``dict(noise=...)`` for
    ``val_step``/``test_step``, which return the EMA generator's images as
    uint8 (quantised as the official code does, for IS and FID).
    """

    def __init__(self, generator: dict, discriminator: dict, n_critic: int = 5,
                 gen_batch_size: int = 128, ema_momentum: float = 0.001,
                 data_preprocessor: dict | None = None, init_cfg: dict | None = None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        check_positive(n_critic=n_critic, gen_batch_size=gen_batch_size)
        if not 0 < ema_momentum <= 1:
            raise NasError(f'ema_momentum must be in (0, 1], got {ema_momentum!r}')
        self.generator = MODELS.build(generator)
        self.discriminator = MODELS.build(discriminator)
        if not isinstance(getattr(self.generator, 'latent_dim', None), int):
            raise NasError(f"the generator {type(self.generator).__name__} must say its "
                           "latent_dim (an int attribute)")
        self.latent_dim = self.generator.latent_dim
        self.n_critic = n_critic
        self.gen_batch_size = gen_batch_size
        # The official weights_init: xavier-uniform convs, BN weights ~ N(1, 0.02).
        init_weights(self.generator)
        init_weights(self.discriminator)
        self.generator_ema = ExponentialMovingAverage(self.generator, momentum=ema_momentum)
        # mmengine's first update copies the weights instead of averaging: spend it on the
        # initial weights, so that the EMA starts from them, as the official code's does.
        self.generator_ema.update_parameters(self.generator)
        # D steps done; saved in checkpoints, so a resumed run keeps the n_critic rhythm.
        self.register_buffer('num_d_steps', torch.tensor(0, dtype=torch.long))
        # Under torchrun each network sits in its own DDP wrapper (MMSeparateDistributedDataParallel).
        self.register_state_dict_post_hook(drop_wrapper_prefixes)

    # -- training ----------------------------------------------------------------------

    def train_step(self, data: dict, optim_wrapper: OptimWrapperDict) -> dict[str, torch.Tensor]:
        """One D step on ``data['images']``, then a G step if this D step is an n_critic-th."""
        missing = [name for name in NETWORKS if name not in optim_wrapper]
        if missing:
            raise NasError(f'optim_wrapper needs one optimiser per network ({", ".join(NETWORKS)}); '
                           f'{missing[0]} has none')
        real = self.data_preprocessor(data, True)['images']
        losses = {'loss_d': self._discriminator_step(real, optim_wrapper['discriminator'])}
        g_step = int(self.num_d_steps) % self.n_critic == 0
        if g_step:
            losses['loss_g'] = self._generator_step(optim_wrapper['generator'])
        # Under torchrun each rank's BatchNorms saw only its own fakes (DDP leaves buffers
        # alone: broadcast_buffers=False). Their running statistics are averaged over the
        # ranks (the mean is the world batch's), so every rank holds, evaluates its share
        # with and copies into the EMA the same generator; one process: nothing happens.
        dist.all_reduce_mean_(batch_norm_statistics(unwrap(self.generator)))
        if g_step:
            self.generator_ema.update_parameters(unwrap(self.generator))
        self.num_d_steps += 1
        # mmengine's 'loss' (their sum) is what NonFiniteLossHook watches: either going NaN stops it.
        _, log_vars = self.parse_losses(losses)
        return log_vars

    def _noise(self, batch_size: int) -> torch.Tensor:
        """This process's ``batch_size`` latent vectors: its slice, in rank order, of the
        batch of ``world_size x batch_size`` that every process draws alike.

        mmengine seeds every rank the same (``randomness`` without ``diff_rank_seed``,
        which would also give each rank other initial weights and EMA), so noise drawn
        per rank would be the same on all of them: the discriminator would see 1/N
        distinct fakes per step and N ranks compute one generator gradient. Drawing the
        whole batch keeps the ranks' random streams in step, and a step on N ranks is the
        one-process step on their batches concatenated.
        """
        world = dist.get_world_size()
        noise = torch.randn(world * batch_size, self.latent_dim, device=self.num_d_steps.device)
        return dist.local_slice(noise)

    def _discriminator_step(self, real: torch.Tensor, optim_wrapper) -> torch.Tensor:
        with torch.no_grad():
            fake = self.generator(self._noise(real.shape[0]))
        if fake.shape[1:] != real.shape[1:]:
            raise NasError(f'the generator makes {tuple(fake.shape[1:])} images but the real '
                           f'ones are {tuple(real.shape[1:])}: set the data img_size and the '
                           "generator's bottom_width to match (bottom_width * 8 = img_size)")
        with optim_wrapper.optim_context(self.discriminator):
            loss = hinge_d_loss(self.discriminator(real), self.discriminator(fake))
        optim_wrapper.update_params(loss)
        return loss.detach()

    def _generator_step(self, optim_wrapper) -> torch.Tensor:
        with optim_wrapper.optim_context(self.generator), frozen(self.discriminator):
            loss = hinge_g_loss(self.discriminator(self.generator(self._noise(self.gen_batch_size))))
        optim_wrapper.update_params(loss)
        return loss.detach()

    # -- sampling and evaluation --------------------------------------------------------

    @torch.no_grad()
    def generate(self, noise: torch.Tensor) -> torch.Tensor:
        """The EMA generator's images of ``noise``, in [-1, 1], in eval mode (BN on running stats)."""
        ema = self.generator_ema.module
        was_training = ema.training
        ema.eval()
        try:
            return ema(noise.to(self.num_d_steps.device))
        finally:
            ema.train(was_training)

    def forward(self, noise: torch.Tensor | None = None, images: torch.Tensor | None = None,
                mode: str = 'tensor'):
        """'tensor': the EMA generator's images of ``noise`` in [-1, 1]; 'predict': the same
        as uint8 ``B x 3 x H x W`` (what the IS/FID metric reads). Training is :meth:`train_step`."""
        if mode not in ('tensor', 'predict'):
            raise ValueError(f"mode must be 'tensor' or 'predict' (training is train_step), "
                             f'got {mode!r}')
        if noise is None:
            raise ValueError('evaluation batches are dict(noise=...) (the LatentNoise dataset)')
        images = self.generate(noise)
        return images if mode == 'tensor' else quantise(images)
