"""The weight learning-rate schedule of a differentiable search: mmengine param schedulers.

The trainer's ``param_scheduler`` takes what an mmengine Runner's does (one
scheduler config or a list: ``LinearLR`` warm-up, ``MultiStepLR``,
``PolyLR``, ``CosineAnnealingLR``, ...), built by mmengine's own
``PARAM_SCHEDULERS`` registry on the weight optimizer and stepped as
mmengine's ``ParamSchedulerHook`` steps them: a scheduler with
``by_epoch=False`` after every iteration, one with ``by_epoch=True`` after
every epoch, and ``convert_to_iter_based=True`` turns an epoch-based one
into an iteration-based one with the trainer's iterations per epoch. As
the Runner does, a scheduler without ``end`` ends with the run (``epochs``,
or the run's iterations when not by epoch).

An iteration of the trainer is one optimizer step: with gradient
accumulation (``accumulative_counts``) it spans several micro-batches, so
``begin``/``end``/``milestones`` in iterations count the steps of the total
batch, as the official recipes state them.
"""
from __future__ import annotations

import copy
import warnings
from typing import Sequence

import torch
from mmengine.optim.scheduler import _ParamScheduler
from mmengine.registry import PARAM_SCHEDULERS

from nas_tasks.errors import NasError, first_line

# Trainer settings that were retired, and what to write instead.
RETIRED_SETTINGS = {
    'weight_lr_schedule': (
        "weight_lr_schedule was replaced by mmengine's param_scheduler: for "
        "weight_lr_schedule=dict(type='cosine', min_lr=M) write "
        "param_scheduler=dict(type='CosineAnnealingLR', eta_min=M, by_epoch=True) in "
        'differentiable_search.trainer'),
}


def check_retired_settings(settings: dict, what: str = 'differentiable_search.trainer') -> None:
    """One line for a retired trainer setting, saying what to write instead."""
    for key, advice in RETIRED_SETTINGS.items():
        if key in settings:
            raise NasError(f'{what}: {advice}')


# A scheduler's state: its position and values, the rest its settings.
PROGRESS_KEYS = ('last_step', '_global_step', '_last_value', 'base_values')


def _settings(state: dict) -> dict:
    return {key: value for key, value in state.items() if key not in PROGRESS_KEYS}


class WeightSchedules:
    """mmengine param schedulers on ``optimizer``, built from ``cfg`` (a dict, a list or None)."""

    def __init__(self, cfg: dict | Sequence[dict] | None, optimizer: torch.optim.Optimizer,
                 epochs: int, iters_per_epoch: int):
        self.optimizer = optimizer
        self.cfgs = _as_list(cfg)
        self.epochs, self.iters_per_epoch = epochs, iters_per_epoch
        self.schedulers = self._build()

    def _build(self) -> list[_ParamScheduler]:
        schedulers = []
        for given in self.cfgs:
            cfg = copy.deepcopy(given)
            # The Runner's default end: the whole run.
            cfg.setdefault('end', self.epochs if cfg.get('by_epoch', True)
                           else self.epochs * self.iters_per_epoch)
            try:
                schedulers.append(PARAM_SCHEDULERS.build(
                    cfg, default_args=dict(optimizer=self.optimizer,
                                           epoch_length=self.iters_per_epoch)))
            except (KeyError, TypeError, ValueError, AssertionError) as error:
                raise NasError(f'bad param_scheduler {given}: {first_line(error)}') from error
        return schedulers

    def __bool__(self) -> bool:
        return bool(self.schedulers)

    def after_iteration(self) -> None:
        for scheduler in self.schedulers:
            if not scheduler.by_epoch:
                scheduler.step()

    def after_epoch(self) -> None:
        for scheduler in self.schedulers:
            if scheduler.by_epoch:
                scheduler.step()

    def state_dict(self) -> list[dict]:
        return [scheduler.state_dict() for scheduler in self.schedulers]

    def load_state_dict(self, states: list[dict], source, iters_of_epochs: Sequence[int]) -> None:
        """Restore the schedulers' states; where this run's settings of a scheduler differ
        from the checkpoint's (more epochs, so a later default ``end``; other milestones),
        replay this run's schedule over the epochs trained (``iters_of_epochs``)."""
        kinds = [type(s).__name__ for s in self.schedulers]
        if len(states) != len(self.schedulers):
            raise NasError(f'checkpoint {source} was written with {len(states)} param '
                           f'scheduler(s), this run has {len(kinds)} ({", ".join(kinds) or "none"}); '
                           'resume with the same param_scheduler or choose another work dir')
        if all(_settings(scheduler.state_dict()) == _settings(state)
               for scheduler, state in zip(self.schedulers, states)):
            for scheduler, state in zip(self.schedulers, states):
                scheduler.load_state_dict(state)
        else:
            self.replay(iters_of_epochs)

    def replay(self, iters_of_epochs: Sequence[int], initial_lrs: list[float] | None = None
               ) -> None:
        """Rebuild the schedulers from the weight optimizer's initial learning rates (or
        ``initial_lrs``) and step them over the epochs already trained
        (``iters_of_epochs``: their iterations), so that the learning rate is the one
        a run configured so from the start would have now."""
        for index, group in enumerate(self.optimizer.param_groups):
            group['lr'] = group.get('initial_lr', group['lr']) if initial_lrs is None \
                else initial_lrs[index]
            group.pop('initial_lr', None)  # the first scheduler built sets it again from 'lr'
        self.schedulers = self._build()
        with warnings.catch_warnings():
            # mmengine warns of a scheduler stepped before its optimizer: here on purpose.
            warnings.filterwarnings('ignore', message='Detected call of `scheduler.step()`')
            for iters in iters_of_epochs:
                for _ in range(iters):
                    self.after_iteration()
                self.after_epoch()


def _as_list(cfg) -> list[dict]:
    if cfg is None:
        return []
    cfgs = [cfg] if isinstance(cfg, dict) else list(cfg)
    for item in cfgs:
        if not isinstance(item, dict) or 'type' not in item:
            raise NasError(f'param_scheduler must be an mmengine scheduler config '
                           f"(dict(type='MultiStepLR', ...)) or a list of them, got {item!r}")
    return [dict(item) for item in cfgs]
