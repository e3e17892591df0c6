"""The real images of the AutoGAN search's shared training: endless batches, each rank loading its slice.

``estimator.real_data`` is a dataset config, the one the final training's
``train_dataloader`` takes (``dict(type='GANImages', source=..., data_root=...,
img_size=32)``). :class:`RealImageBatches` serves it through a torch
``DataLoader`` with workers: for every step a seeded permutation (the same on
every rank) picks the batch of ``dis_batch_size`` images, and each rank loads,
decodes and resizes to the stage's resolution (8, 16 or 32 px) only its
contiguous 1/N of it, the slice its share of the data-parallel step trains on.
So the world trains on the batches one process trains on, whatever N is.
"""
from __future__ import annotations

from functools import partial
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from mmengine.registry import DATASETS
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from nas_tasks import dist
from nas_tasks.errors import NasError

# ``real_data(image_size, batch_size, seed)``: endless batches in [-1, 1] at that size; each
# item is this rank's contiguous slice of a batch of ``batch_size`` (with one process, all of it).
RealData = Callable[[int, int, int], Iterator[torch.Tensor]]

EXAMPLE = ("dict(type='GANImages', source='cifar10', data_root='data/cifar10', split='train', "
           "img_size=32)")


class RankSliceBatches(Sampler[list[int]]):
    """Endless batches of ``batch_size`` dataset indices, each epoch a fresh permutation drawn
    from ``seed`` (the last partial batch dropped); yields this rank's contiguous slice of each."""

    def __init__(self, num_images: int, batch_size: int, seed: int):
        if num_images < batch_size:
            raise NasError(f'the real data holds {num_images} images, fewer than a batch of '
                           f'{batch_size} (estimator.gan.dis_batch_size): give more images')
        self.num_images, self.batch_size, self.seed = num_images, batch_size, seed

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed)
        while True:
            order = torch.randperm(self.num_images, generator=generator)
            for start in range(0, self.num_images - self.batch_size + 1, self.batch_size):
                yield dist.local_slice(order[start:start + self.batch_size]).tolist()


def collate_at_size(image_size: int, items: list[dict]) -> torch.Tensor:
    """The items' images as one batch at ``image_size`` px (in the loader's workers)."""
    images = default_collate(items)['images']
    if images.shape[-1] != image_size:
        images = F.interpolate(images, size=(image_size, image_size), mode='bilinear',
                               align_corners=False, antialias=True)
    return images


class RealImageBatches:
    """A dataset of ``dict(images=...)`` items in [-1, 1] served as :data:`RealData`.

    Every call starts from its own seed, so an iteration's batches do not depend
    on what earlier iterations drew, and a resumed search sees the same ones.
    """

    def __init__(self, dataset: Dataset, num_workers: int = 0, pin_memory: bool = False):
        self.dataset, self.num_workers, self.pin_memory = dataset, num_workers, pin_memory
        self.num_images = len(dataset)  # reads it now: missing data stops the search before training

    def __call__(self, image_size: int, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
        loader = DataLoader(self.dataset, batch_sampler=RankSliceBatches(self.num_images, batch_size, seed),
                            num_workers=self.num_workers, pin_memory=self.pin_memory,
                            collate_fn=partial(collate_at_size, image_size))
        try:
            yield from loader
        except NasError as error:
            raise NasError(message_from_worker(str(error))) from None


def message_from_worker(message: str) -> str:
    """A NasError's own line out of the message a DataLoader worker's re-raise wraps it in
    (``Caught NasError in DataLoader worker process 0.``, the worker's traceback, then
    ``nas_tasks.errors.NasError: <line>``); any other message as it is."""
    lines = message.splitlines()
    if len(lines) > 1 and lines[0].startswith(f'Caught {NasError.__name__} '):
        return lines[-1].split(f'{NasError.__name__}: ', 1)[-1]
    return message


def rank_slices_of(real_data: Callable) -> RealData:
    """A callable of whole batches (with one process, a :data:`RealData`) as this rank's slices."""
    def slices(image_size: int, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
        return (dist.local_slice(batch) for batch in real_data(image_size, batch_size, seed))
    return slices


def build_real_data(real_data: dict | Callable, num_workers: int, pin_memory: bool) -> RealData:
    """``estimator.real_data``: a dataset config (as final training's) or a callable
    ``(image_size, batch_size, seed) -> iterator of whole batches``."""
    if callable(real_data):
        return rank_slices_of(real_data)
    if not isinstance(real_data, dict) or 'type' not in real_data:
        raise NasError(f'estimator.real_data must be a dataset config, as the final training\'s '
                       f'train_dataloader.dataset (e.g. {EXAMPLE}), got {real_data!r}')
    return RealImageBatches(DATASETS.build(real_data), num_workers, pin_memory)
