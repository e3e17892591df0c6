"""The data loaders of a differentiable search's two halves, built from an mmengine template.

The trainer's ``dataloader`` setting is an mmengine/mmdet dataloader config
without its ``dataset`` (batch_size, num_workers, sampler, batch_sampler,
collate_fn, persistent_workers, pin_memory, ...). Each half's loader is built
once by mmengine's ``Runner.build_dataloader``; before each pass over a half
its sampler is re-seeded and told the epoch, so the data order is a function
of (seed, half, epoch, pass) only, on every rank and after a resume.
"""
from __future__ import annotations

import copy
import functools
from typing import Sized

import torch
from mmengine.dataset import InfiniteSampler
from mmengine.dataset.utils import worker_init_fn as mmengine_worker_init_fn
from mmengine.runner import Runner
from torch.utils.data import DataLoader

from nas_tasks import dist
from nas_tasks.errors import NasError, first_line
from nas_tasks.seeding import seed_for
from nas_tasks.validation import check_int

# What a search reads when its config names no dataloader: one sample at a
# time, shuffled, samples passed to the model as a list (mmengine's default).
DEFAULT_DATALOADER = dict(batch_size=1, num_workers=0,
                          sampler=dict(type='DefaultSampler', shuffle=True),
                          collate_fn=dict(type='pseudo_collate'))


def dataloader_template(cfg: dict | None) -> dict:
    """The checked template: :data:`DEFAULT_DATALOADER` with ``cfg``'s keys over it."""
    if cfg is None:
        cfg = {}
    if not isinstance(cfg, dict):
        raise NasError(f'the trainer dataloader must be a dict (an mmengine dataloader config '
                       f'without dataset), got {cfg!r}')
    if 'dataset' in cfg:
        raise NasError('the trainer dataloader must not name a dataset: the search gives it '
                       'its weight half and its architecture half; remove dataloader.dataset')
    template = {**copy.deepcopy(DEFAULT_DATALOADER), **copy.deepcopy(dict(cfg))}
    check_int('dataloader.batch_size', template['batch_size'], minimum=1)
    check_int('dataloader.num_workers', template['num_workers'], minimum=0)
    return template


class HalfLoader:
    """One half's DataLoader, built once, reseeded for every pass.

    Last incomplete batches are dropped unless the template says
    ``drop_last=False`` (at its top level, or in its ``batch_sampler``).
    Workers are seeded as mmengine seeds them (``worker_init_fn``:
    ``seed + num_workers * rank + worker``), with a seed of (seed, half,
    pass, epoch), so augmentations differ between epochs and repeat on
    resume. ``persistent_workers=True`` keeps the workers of the first pass,
    and their random state, for the whole run: faster, but then a resumed
    run's augmentations differ from an uninterrupted run's.
    """

    def __init__(self, template: dict, dataset: Sized, half: str, seed: int):
        self.half, self.seed = half, seed
        cfg = dict(template, dataset=dataset)
        if 'batch_sampler' in cfg:
            cfg['batch_sampler'] = {'drop_last': True, **cfg['batch_sampler']}
        else:
            cfg.setdefault('drop_last', True)
        try:
            # Copies the dataset once (Runner.build_dataloader deep-copies its config).
            self.loader: DataLoader = Runner.build_dataloader(cfg, seed=seed_for(seed, half))
        except (KeyError, TypeError, ValueError) as error:
            raise NasError(f'bad trainer dataloader {template}: '
                           f'{first_line(error)}') from error
        self.batch_size = template['batch_size']
        self.sampler = _seeded_sampler(self.loader)
        self._worker_init = self.loader.worker_init_fn

    @property
    def dataset(self) -> Sized:
        return self.loader.dataset

    def __len__(self) -> int:
        """Batches per pass on this rank."""
        return len(self.loader)

    def for_pass(self, epoch: int, pass_index: int = 0) -> DataLoader:
        """The loader, set for pass ``pass_index`` over the half in ``epoch``."""
        self.sampler.seed = seed_for(self.seed, f'{self.half}:{pass_index}')
        self.sampler.set_epoch(epoch)
        loader_seed = seed_for(self.seed, f'{self.half}:{pass_index}:{epoch}')
        init = self._worker_init
        if isinstance(init, functools.partial) and init.func is mmengine_worker_init_fn:
            self.loader.worker_init_fn = functools.partial(init, seed=loader_seed)
        # Also keeps the loader from drawing its base seed from the global torch RNG.
        self.loader.generator = torch.Generator().manual_seed(loader_seed)
        return self.loader


def _seeded_sampler(loader: DataLoader):
    """The loader's sampler (under its batch sampler, if any); it must take a seed and an epoch."""
    sampler = getattr(loader.batch_sampler, 'sampler', loader.sampler)
    name = type(sampler).__name__
    if isinstance(sampler, InfiniteSampler):
        raise NasError(f'the trainer dataloader sampler {name} never ends an epoch; use '
                       "dict(type='DefaultSampler', shuffle=True)")
    if not hasattr(sampler, 'seed') or not callable(getattr(sampler, 'set_epoch', None)):
        raise NasError(f'the trainer dataloader sampler {name} has no seed and set_epoch, so the '
                       "data order could not repeat on resume; use dict(type='DefaultSampler', "
                       'shuffle=True)')
    return sampler


def check_half_size(loader: HalfLoader, half: str) -> None:
    """A half too small for one batch per process is refused (its epoch would be empty)."""
    if len(loader) == 0:
        world = dist.get_world_size()
        raise NasError(f'the {half} half holds {len(loader.dataset)} samples, fewer than '
                       f'batch_size {loader.batch_size} per process ({world} process(es)); lower '
                       'batch_size or give the search more data')
