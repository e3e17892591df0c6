"""The AutoGAN search under torchrun: data-parallel shared training, rewards spread over ranks.

Every rank holds the whole shared GAN and trains the same architecture at every
step (the loop broadcasts each drawn architecture). With a process group of
world size W > 1:

**Shared training** (:class:`DataParallelSteps`). Every rank draws the *full*
noise batch of each D and G step from the trainer's own generator, so that
generator stays identical on all ranks, and takes its contiguous 1/W slice of
the noise; of the real batch it loads only its slice
(:mod:`gan.autogan.real_data`; batch sizes must divide by W). After the
backward pass one all_reduce averages the gradients of the stepping
optimiser's parameters, the loss (so every rank pushes the full-batch loss
into the dynamic-reset windows and decides a reset alike) and the running
statistics of the generator's BatchNorms. Since the losses are means over the
batch, the averaged gradient is the full batch's, and the step equals the
single-process step up to float rounding, except for BatchNorm (below).

Why an explicit all_reduce and not DistributedDataParallel:

- a D step runs D twice (real, then fake: two spectral-norm power iterations,
  as the official code) before one backward; DDP marks a parameter ready once
  per backward and rejects the second use unless the graph is static, which
  the per-step path selection of the shared generator is not;
- the G loss backpropagates through D, whose gradients a DDP-wrapped D would
  all-reduce for nothing;
- all ranks run the same path, so the parameters that hold a gradient are the
  same on every rank and one flat all_reduce of them is enough, without DDP's
  search for unused parameters at every step;
- spectral norm's vectors need no broadcast: its power iteration depends on
  the weights only, which are equal on all ranks, so the buffers stay equal.

**BatchNorm** in the generator (always in the shared ``to_rgb``, and in the
cells whose norm is BN) normalises with the statistics of the local slice,
not of the full batch: SyncBatchNorm would fix that but runs on CUDA only.
A step under W ranks therefore differs from the single-process step by the
difference between slice and batch statistics: small, but it accumulates
over training, so rewards of a W-rank search equal those of one process only
within a tolerance (tests/test_autogan_distributed.py measures it). The
running statistics are averaged over the ranks after every step: the mean
is then the full batch's, the variance the mean of the slices' variances.

**Rewards** (:func:`inception_score_over_ranks`). The estimator then sets
``evaluates_collectively``: every rank scores every candidate, each
generating a contiguous share of the reward's batches from the same noise
stream one process draws (it draws and skips the noise of the batches before
its share), so each image is exactly the one a single process generates at
that position; the IS-layer features are gathered in order and every rank
computes the same score.
"""
from __future__ import annotations

from typing import Iterator, Protocol

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from gan.metrics import InceptionScore, extract_features, quantise
from nas_tasks import dist
from nas_tasks.errors import NasError


class DataParallelSteps:
    """This rank's part of the shared-GAN steps; with one process every method is a no-op."""

    def __init__(self, batch_sizes: dict[str, int]):
        self.world = dist.get_world_size()
        uneven = {name: size for name, size in batch_sizes.items() if size % self.world}
        if uneven:
            sizes = ', '.join(f'{name}={size}' for name, size in uneven.items())
            raise NasError(f'under torchrun with {self.world} processes each rank trains on a '
                           f'slice of every batch, so the batch sizes must divide by {self.world}: '
                           f'change estimator.gan {sizes}')

    def local(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous slice of a full batch."""
        return batch if self.world == 1 else dist.local_slice(batch)

    def synchronise(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer,
                    generator: nn.Module) -> float:
        """Average the gradients ``optimizer`` steps with, ``loss`` and the generator's
        BatchNorm statistics over the ranks; return the full-batch loss."""
        if self.world == 1:
            return loss.item()
        value = loss.detach().reshape(1).clone()
        # Same path on every rank, so the same parameters hold a gradient everywhere.
        grads = [param.grad for group in optimizer.param_groups for param in group['params']
                 if param.grad is not None]
        dist.all_reduce_mean_([*grads, value, *batch_norm_statistics(generator)])
        return value.item()


def batch_norm_statistics(network: nn.Module) -> list[torch.Tensor]:
    return [stat for module in network.modules() if isinstance(module, _BatchNorm)
            and module.track_running_stats for stat in (module.running_mean, module.running_var)]


class NoiseSampler(Protocol):
    """Images of one generator path from a fixed noise stream (the estimator's reward sampler)."""

    def noise(self, n: int) -> torch.Tensor: ...

    def generate(self, z: torch.Tensor) -> torch.Tensor: ...


def inception_score_over_ranks(inception_score: InceptionScore,
                               sampler: NoiseSampler) -> tuple[float, float]:
    """The IS of ``sampler``'s first ``num_images`` images, the batches split over the ranks;
    on every rank the score one process computes (the same images, in the same order)."""
    num_images, batch_size = inception_score.num_images, inception_score.batch_size
    starts = range(0, num_images, batch_size)
    mine = dist.rank_range(len(starts))
    logits, error = None, None
    try:
        if mine:
            batches = _share_of_batches(sampler, [min(batch_size, num_images - start)
                                                  for start in starts[:mine.stop]], mine.start)
            logits = extract_features(inception_score.extractor, batches, 'isc')
    except Exception as caught:  # noqa: BLE001  (the other ranks must not wait for this one)
        error = caught
    dist.raise_if_any_rank_failed(error)
    return inception_score.of_features(dist.all_gather_cat(logits))


def _share_of_batches(sampler: NoiseSampler, sizes: list[int], first: int) -> Iterator[torch.Tensor]:
    """Quantised batches ``first`` onwards of the stream cut into ``sizes``; earlier noise is drawn and skipped."""
    for index, size in enumerate(sizes):
        z = sampler.noise(size)
        if index >= first:
            with torch.no_grad():
                yield quantise(sampler.generate(z))
