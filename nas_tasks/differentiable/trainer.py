"""The bilevel (DARTS-style) trainer of a differentiable architecture search.

Generic over the search model: Auto-DeepLab's search network, FNA's super
network, or any module that holds an :class:`ArchParameters` and returns its
loss. Nothing task-specific lives here; a task adds evaluation through the
``on_epoch_end`` callback.
"""
from __future__ import annotations

import contextlib
import itertools
import logging
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Sequence

import torch
from mmengine.logging import MMLogger
from mmengine.registry import OPTIMIZERS
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset
from tqdm import tqdm

from nas_tasks import dist
from nas_tasks.builder import build_component
from nas_tasks.differentiable.arch_params import ArchParameters
from nas_tasks.differentiable.architect import Architect, backward_loss, zero_grads
from nas_tasks.differentiable.finite import NonFiniteStep, check_step, non_finite_entries
from nas_tasks.differentiable.loaders import HalfLoader, check_half_size, dataloader_template
from nas_tasks.differentiable.precision import Precision, check_amp_settings, sync_batch_norm
from nas_tasks.differentiable.schedules import WeightSchedules
from nas_tasks.differentiable.state import capture_rng_state, restore_rng_state
from nas_tasks.errors import NasError, first_line
from nas_tasks.plots import plot_arch_weights
from nas_tasks.search_logging import SearchLog, epoch_scalars
from nas_tasks.seeding import seed_everything, seed_for
from nas_tasks.validation import check_int, check_number
from nas_tasks.workdir import SearchWorkDir, check_state_keys
from nas_tasks.world_size import WORLD_SIZE_KEY, check_resumed_world_size, current_world_size

# What a trainer checkpoint holds (see DifferentiableTrainer.state_dict); it
# also holds 'scaler' (the float16 loss scaler's state, None without one),
# optional so that checkpoints written before mixed precision still load.
# It also records the world size it was trained on (WORLD_SIZE_KEY; absent in
# checkpoints written before it was recorded).
STATE_KEYS = ('epoch', 'global_step', 'model', 'weight_optimizer', 'arch_optimizer',
              'param_schedulers', 'history', 'result', 'rng', 'settings')
ARCH_PATHS = ('sampled', 'all')
# DARTS (Liu et al. 2019) settings, used where a config names no optimizer.
DEFAULT_WEIGHT_OPTIMIZER = dict(type='SGD', lr=0.025, momentum=0.9, weight_decay=3e-4)
DEFAULT_ARCH_OPTIMIZER = dict(type='Adam', lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)

EpochCallback = Callable[['DifferentiableTrainer', int], 'dict[str, float] | None']


class StepLosses(NamedTuple):
    """What one iteration measured: its losses, and the architecture cost (None where not taken)."""
    weight: float
    arch: float | None
    arch_cost: float | None


class DifferentiableTrainer:
    """Trains weights and architecture parameters alternately on two data halves.

    The model contract:

    * ``model.arch_params`` is an :class:`ArchParameters`; every other
      parameter that requires grad is a weight.
    * ``model(batch)`` returns a scalar loss tensor; the model moves the batch
      to its device itself.
    * optional ``model.arch_weights()`` returns ``{group: normalised tensor}``
      (what is recorded and plotted; default: ``arch_params.softmax(group)``
      per group), and optional ``model.arch_op_names`` and
      ``model.arch_row_names`` map a group to labels of its last dimension
      (the ops) and of its rows (the other dimensions flattened), for the plots.
    * optional ``model.arch_cost()`` returns a scalar tensor, a function of
      the architecture parameters (FNA's expected latency, say): it is added
      to the loss of every architecture step (first and second order), never
      to a weight step.

    Each iteration (``global_step`` counts them over the whole run):
    ``arch_params.resample(global_step)``; from epoch ``arch_start_epoch`` on,
    an architecture step on a batch of ``arch_dataset`` (first or second
    order, see :class:`Architect`; only ``arch_optimizer`` steps, only the
    architecture parameters); then a weight step on a batch of
    ``weight_dataset`` (its architecture gradients are dropped, weight
    gradients are clipped to ``grad_clip`` by norm, only ``weight_optimizer``
    steps). ``arch_grad_clip`` clips the architecture gradients of an
    architecture step by norm likewise (None: not clipped, as DARTS; FNA:
    35). In single-path mode ``arch_params.uniform`` is True during the
    warm-up epochs (ops drawn uniformly) and False after (drawn from the
    softmax). ``arch_paths`` says what the architecture steps of a
    single-path search run: ``'sampled'`` the iteration's sampled path, like
    the weight step; ``'all'`` every candidate op weighted by the softmax
    (the DARTS relaxation; FNA), inside :meth:`ArchParameters.all_paths`.
    An epoch is one pass over the weight half (at most
    ``max_iters_per_epoch`` iterations); the architecture half is cycled
    through as often as needed.

    ``dataloader`` is an mmengine (or mmdet) dataloader config without its
    dataset: batch_size, num_workers, sampler, batch_sampler, collate_fn,
    persistent_workers, pin_memory ... (default
    :data:`~nas_tasks.differentiable.loaders.DEFAULT_DATALOADER`: batch 1, no
    workers, a shuffling DefaultSampler, pseudo_collate). Each half's loader
    is built from it with mmengine's ``Runner.build_dataloader``; last
    incomplete batches are dropped unless it says ``drop_last=False``.

    ``param_scheduler`` schedules the weight learning rate with mmengine's
    param schedulers, as a Runner's ``param_scheduler`` does (see
    :mod:`~nas_tasks.differentiable.schedules`): e.g. FNA's linear warm-up
    and steps, Auto-DeepLab's cosine (DARTS anneals per epoch:
    ``dict(type='CosineAnnealingLR', eta_min=..., by_epoch=True)``). None
    keeps it constant. The architecture learning rate stays constant.

    ``accumulative_counts=k`` accumulates gradients as mmengine's
    OptimWrapper does: an iteration reads k micro-batches of each half (the
    same single path for all of them), divides each loss by k, and steps
    each optimizer once, so it is one step of k times the batch; under DDP
    the weight micro-batches but the last run in ``no_sync``. Iterations
    (``global_step``, ``max_iters_per_epoch``, ``log_interval``, iteration
    based schedules) count these steps; an epoch is ``len(weight half
    loader) // k`` of them. So 1, 2 or 4 processes reach a recipe's total
    batch (``batch_size * processes * k``). First order only.

    ``amp=True`` runs the forward passes under autocast (float16 with loss
    scaling on CUDA, bfloat16 on the CPU; see :class:`Precision`); not with
    ``second_order``. ``sync_bn=True`` converts the model's BatchNorm layers
    to SyncBatchNorm before the DDP wrap when more than one rank trains
    (CUDA only: refused on the CPU).

    Randomness: each half's order is a function of ``(seed, half, pass,
    epoch)`` (the sampler's seed and ``set_epoch``, on every rank); loader
    workers are seeded by mmengine's ``worker_init_fn`` from ``(seed, half,
    pass, epoch)``; the single paths are a function of
    ``(arch_params.seed, step)``; the global generators are seeded from
    ``(seed, rank)`` when a run starts and saved in every checkpoint. So a
    run resumed from an epoch checkpoint ends bit-identical to an
    uninterrupted one (on the CPU; see the README for CUDA).

    Under torch.distributed the weight steps (and second-order architecture
    steps) run the model inside DistributedDataParallel, which averages the
    gradients over ranks; a first-order architecture step freezes the weights
    and runs the bare model, computing no weight gradient, and averages the
    architecture gradients itself (see :mod:`~nas_tasks.differentiable.architect`).
    All ranks draw the same single path. Each rank reads ``batch_size``
    samples per micro-batch. Rank 0 writes the files. The checkpoint records
    the world size; resuming on another one is refused unless allowed
    (:mod:`nas_tasks.world_size`).

    Work directory (:class:`SearchWorkDir`'s rules): ``search_state.pth``
    after every epoch, the one before kept as ``search_state.prev.pth`` (a
    resume falls back to it when the latest is unreadable, and repeats one
    epoch), ``search.log`` (when no logger is given), ``plots/arch_<group>.png``.

    Non-finite numbers: a step whose loss or gradients are NaN or infinite on
    any rank is not taken; the run stops with a NasError that names the epoch
    and iteration, and the last checkpoint (the previous epoch's) stays the
    one to resume from. A model holding non-finite values is never saved.
    Under float16 loss scaling an overflowing gradient is the scaler's to
    skip (it lowers the scale); the run stops only when the scale collapses.

    ``history`` holds one record per epoch::

        dict(epoch=0-based index, step=global step after it,
             weight_loss=mean, arch_loss=mean or None during warm-up,
             arch_cost=mean of model.arch_cost() over the architecture steps,
                       None during warm-up or without one,
             lr=weight learning rate of the epoch's last step,
             arch_weights={group: nested list, the normalised weights},
             metrics={name: float, returned by on_epoch_end})

    ``on_epoch_end(trainer, epoch)`` (``epoch`` 0-based) runs on every rank
    after each epoch, before the checkpoint; a dict it returns becomes the
    record's ``metrics``.

    ``result`` is the task's final record (decoded architecture, metrics),
    once it calls :meth:`record_result`; it is saved in the checkpoint, so a
    finished search that is resumed can export it again without recomputing it.
    """

    def __init__(self, model: nn.Module, weight_dataset: Dataset, arch_dataset: Dataset, *,
                 work_dir: str | Path, epochs: int = 50, arch_start_epoch: int = 0,
                 dataloader: dict | None = None,
                 weight_optimizer: dict | None = None, arch_optimizer: dict | None = None,
                 param_scheduler: dict | list | None = None, accumulative_counts: int = 1,
                 grad_clip: float | None = 5.0, arch_grad_clip: float | None = None,
                 second_order: bool = False, single_path: bool = False,
                 arch_paths: str = 'sampled', amp: bool = False, sync_bn: bool = False,
                 seed: int = 0, log_interval: int = 50, max_iters_per_epoch: int | None = None,
                 find_unused_parameters: bool | None = None,
                 on_epoch_end: EpochCallback | None = None,
                 logger: logging.Logger | None = None, search_log: SearchLog | None = None):
        arch_params = getattr(model, 'arch_params', None)
        if not isinstance(arch_params, ArchParameters):
            raise NasError(f'the search model {type(model).__name__} has no arch_params '
                           '(an ArchParameters); a differentiable search needs one')
        check_int('epochs', epochs, minimum=1)
        check_int('arch_start_epoch', arch_start_epoch, minimum=0)
        check_int('seed', seed, minimum=0)
        check_int('log_interval', log_interval, minimum=1)
        check_int('accumulative_counts', accumulative_counts, minimum=1)
        if max_iters_per_epoch is not None:
            check_int('max_iters_per_epoch', max_iters_per_epoch, minimum=1)
        if arch_start_epoch > epochs:
            raise NasError(f'arch_start_epoch ({arch_start_epoch}) is after the last epoch '
                           f'({epochs}); set it to at most epochs')
        for name, clip in (('grad_clip', grad_clip), ('arch_grad_clip', arch_grad_clip)):
            if clip is not None:
                check_number(name, clip, inclusive=False)
        for name, flag in (('second_order', second_order), ('single_path', single_path)):
            if not isinstance(flag, bool):
                raise NasError(f'{name} must be True or False, got {flag!r}')
        _check_arch_paths(arch_paths, single_path)
        check_amp_settings(amp, second_order)
        if second_order and accumulative_counts > 1:
            raise NasError('accumulative_counts > 1 needs first-order architecture steps (the '
                           'unrolled step simulates one weight step on one batch); set '
                           'second_order=False or accumulative_counts=1')
        model = sync_batch_norm(model, sync_bn)

        self.model = model
        self.arch_params: ArchParameters = arch_params
        self.work = SearchWorkDir(work_dir)
        self.work_dir = self.work.path
        self.epochs, self.arch_start_epoch = epochs, arch_start_epoch
        self.grad_clip = grad_clip
        self.second_order, self.single_path = second_order, single_path
        self.arch_paths, self.amp, self.sync_bn = arch_paths, amp, sync_bn
        self.seed, self.log_interval = seed, log_interval
        self.max_iters_per_epoch = max_iters_per_epoch
        self.accumulative_counts = accumulative_counts
        self.on_epoch_end = on_epoch_end
        self.logger: logging.Logger = logger or MMLogger.get_instance('nas_tasks')
        self._own_logger = logger is None
        self.search_log = search_log or SearchLog()  # per-epoch scalars to the visualizer backends
        self.dataloader = dataloader_template(dataloader)
        self.weight_loader = HalfLoader(self.dataloader, weight_dataset, 'weight', seed)
        self.arch_loader = HalfLoader(self.dataloader, arch_dataset, 'arch', seed)
        # The loaders hold the halves (copies); the trainer keeps no second reference.
        self.weight_dataset, self.arch_dataset = self.weight_loader.dataset, self.arch_loader.dataset
        for half, loader in (('weight', self.weight_loader), ('architecture', self.arch_loader)):
            check_half_size(loader, half)
        if len(self.weight_loader) < accumulative_counts:
            raise NasError(f'the weight half gives {len(self.weight_loader)} batch(es) per process '
                           f'and pass, fewer than accumulative_counts {accumulative_counts}: an '
                           'epoch would take no step; lower accumulative_counts or batch_size')

        arch_ids = {id(p) for p in arch_params.parameters()}
        self.arch_parameters = list(arch_params.parameters())
        self.weight_parameters = [p for p in model.parameters()
                                  if id(p) not in arch_ids and p.requires_grad]
        if not self.weight_parameters:
            raise NasError(f'the search model {type(model).__name__} has no weights to train '
                           '(all its trainable parameters are architecture parameters)')
        self.weight_optimizer = _build_optimizer(weight_optimizer or DEFAULT_WEIGHT_OPTIMIZER,
                                                 self.weight_parameters, 'weight_optimizer')
        self.arch_optimizer = _build_optimizer(arch_optimizer or DEFAULT_ARCH_OPTIMIZER,
                                               self.arch_parameters, 'arch_optimizer')
        self._configured_lrs = {name: [group['lr'] for group in optimizer.param_groups]
                                for name, optimizer in self._optimizers().items()}
        self.schedules = WeightSchedules(param_scheduler, self.weight_optimizer, epochs,
                                         self.iters_per_epoch)  # sets the first step's lr
        self.last_lr = self.weight_lr  # the weight learning rate of the latest step

        arch_params.single_path = single_path
        self.precision = Precision(amp, next(model.parameters()).device)
        self.forward = self._wrap(model, single_path if find_unused_parameters is None
                                  else find_unused_parameters)
        cost = getattr(model, 'arch_cost', None)
        self.architect = Architect(self.forward, self.weight_parameters, self.arch_parameters,
                                   self.weight_optimizer, self.arch_optimizer, second_order,
                                   cost=cost if callable(cost) else None, precision=self.precision,
                                   module=model, grad_clip=arch_grad_clip)
        self.epoch = 0  # epochs completed
        self.global_step = 0  # iterations completed
        self.history: list[dict] = []
        self.result: dict | None = None
        self.checkpointed_epoch: int | None = None  # epochs completed in the latest checkpoint

    # -- set-up ----------------------------------------------------------------
    @staticmethod
    def _wrap(model: nn.Module, find_unused_parameters: bool) -> Callable[[Any], torch.Tensor]:
        """The model, inside DistributedDataParallel when a process group is up."""
        if not dist.is_distributed():
            return model
        device = next(model.parameters()).device
        device_ids = [device.index] if device.type == 'cuda' else None
        return DistributedDataParallel(model, device_ids=device_ids, broadcast_buffers=False,
                                       find_unused_parameters=find_unused_parameters)

    def _arch_batches(self, epoch: int) -> Iterator[Any]:
        """Architecture-half batches for one epoch, cycling through the half as needed."""
        for pass_index in itertools.count():
            yield from self.arch_loader.for_pass(epoch, pass_index)

    @property
    def iters_per_epoch(self) -> int:
        iters = len(self.weight_loader) // self.accumulative_counts
        return iters if self.max_iters_per_epoch is None else min(iters, self.max_iters_per_epoch)

    # -- state -----------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.work.checkpoint_path

    def state_dict(self) -> dict:
        """Everything a resumed run needs (:data:`STATE_KEYS`); loadable with ``weights_only=True``.

        ``rng`` holds every rank's generator states (gathered), in rank order;
        ``scaler`` the float16 loss scaler's state (None without one).
        """
        return dict(epoch=self.epoch, global_step=self.global_step,
                    model=self.model.state_dict(),
                    weight_optimizer=self.weight_optimizer.state_dict(),
                    arch_optimizer=self.arch_optimizer.state_dict(),
                    param_schedulers=self.schedules.state_dict(),
                    history=self.history, result=self.result,
                    rng=dist.gather_objects(capture_rng_state()),
                    scaler=self.precision.state_dict(),
                    **{WORLD_SIZE_KEY: current_world_size()},
                    settings=dict(seed=self.seed, arch_seed=self.arch_params.seed,
                                  single_path=self.single_path, second_order=self.second_order,
                                  arch_paths=self.arch_paths, amp=self.amp,
                                  accumulative_counts=self.accumulative_counts))

    def load_state_dict(self, state: dict) -> None:
        check_state_keys(state, STATE_KEYS, self.checkpoint_path)
        check_resumed_world_size(state.get(WORLD_SIZE_KEY), 'the search network',
                                 self.checkpoint_path)
        saved = state['settings']
        for name, value in (('seed', self.seed), ('arch_seed', self.arch_params.seed)):
            if saved.get(name) != value:
                raise NasError(f'checkpoint {self.checkpoint_path} was written with {name} '
                               f'{saved.get(name)}, this run has {value}; resume with the same '
                               'seed or choose another work dir')
        try:
            self.model.load_state_dict(state['model'])
        except RuntimeError as error:
            raise NasError(f'checkpoint {self.checkpoint_path} does not fit this search model; was '
                           f'the network changed? ({first_line(error)})') from error
        self.weight_optimizer.load_state_dict(state['weight_optimizer'])
        self.arch_optimizer.load_state_dict(state['arch_optimizer'])
        self.schedules.load_state_dict(state['param_schedulers'], self.checkpoint_path,
                                       _iters_of_epochs(state['history']))
        if saved.get('accumulative_counts', 1) != self.accumulative_counts:
            self.logger.warning(f"accumulative_counts {self.accumulative_counts} (the checkpoint "
                                f"has {saved.get('accumulative_counts', 1)}): the total batch "
                                'changes from here on')
        self.precision.load_state_dict(state.get('scaler'))
        self.epoch, self.global_step = state['epoch'], state['global_step']
        self.history = list(state['history'])
        self._apply_configured_lrs()
        self.last_lr = self.weight_lr
        self.result = state.get('result')
        self.checkpointed_epoch = self.epoch
        rng = state['rng']
        restore_rng_state(rng[dist.get_rank()] if len(rng) == dist.get_world_size() else rng[0])

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return dict(weight_optimizer=self.weight_optimizer, arch_optimizer=self.arch_optimizer)

    def _apply_configured_lrs(self) -> None:
        """After loading a checkpoint, use the learning rates of this run's settings.

        A search that diverged can so resume with a lower lr. The weight
        schedule keeps its position: it is replayed from the new initial lr
        over the steps taken, so the lr is the one a run set so from the start
        would have now. Unchanged settings change nothing, so the resume stays exact.
        """
        for name, optimizer in self._optimizers().items():
            changed = False
            for group, lr in zip(optimizer.param_groups, self._configured_lrs[name]):
                saved = group.get('initial_lr', group['lr'])
                if saved == lr:
                    continue
                self.logger.info(f'{name}: initial learning rate {lr:g} (the checkpoint has '
                                 f'{saved:g})')
                group['lr'], changed = lr, True
            if changed and name == 'weight_optimizer' and self.schedules:
                self.schedules.replay(_iters_of_epochs(self.history), self._configured_lrs[name])

    def save_checkpoint(self) -> None:
        """Save the state (rank 0), keeping the previous checkpoint; refuse non-finite weights."""
        self._refuse_non_finite_model()
        state = self.state_dict()  # on every rank: gathering the RNG states is collective
        dist.on_main_process(lambda: self.work.save_checkpoint(state))  # its failure stops every rank
        self.checkpointed_epoch = self.epoch

    def _refuse_non_finite_model(self) -> None:
        bad = non_finite_entries(self.model.state_dict())
        if dist.on_every_rank(not bad):
            return
        where = ', '.join(bad[:3]) + (' ...' if len(bad) > 3 else '') if bad else 'on another rank'
        raise NasError(f'after epoch {self.epoch} (1-based) the search model holds NaN or '
                       f'infinite values ({where}), so no checkpoint was written; '
                       f'{self._how_to_resume()}')

    def _how_to_resume(self) -> str:
        # Resuming repeats the run exactly, so it has to change something.
        change = ('after lowering the learning rates or grad_clip in the trainer settings '
                  '(unchanged settings reach the same step again), or checking the data')
        if self.checkpointed_epoch is None:
            return f'no checkpoint was written yet: rerun with the same --work-dir {change}'
        return (f'the last good checkpoint is {self.checkpoint_path} (after epoch '
                f'{self.checkpointed_epoch}): rerun with --resume and the same --work-dir {change}')

    def record_result(self, result: dict) -> None:
        """Keep the search's final record in the checkpoint (on every rank; rank 0 writes)."""
        self.result = result
        self.save_checkpoint()

    def prepare_work_dir(self, resume: bool) -> None:
        """Apply the work-dir rules, open the log, and on resume load the latest good checkpoint."""
        self.work.check(resume)
        if self._own_logger:
            self.logger = self.work.open_log()
        state = self.work.load_checkpoint(self.logger) if resume else None
        if state is not None:
            self.load_state_dict(state)

    # -- running -----------------------------------------------------------------
    def fit(self, resume: bool = False) -> list[dict]:
        """Train (or finish training) for ``epochs`` epochs; returns :attr:`history`."""
        self.prepare_work_dir(resume)
        if self.epoch:
            self.logger.info(f'resumed after epoch {self.epoch}')
        else:
            seed_everything(seed_for(self.seed, f'global:{dist.get_rank()}'))
        if self.epoch < self.epochs:
            self.search_log.open()
        iters = self.iters_per_epoch
        progress = tqdm(total=self.epochs * iters, initial=self.epoch * iters, desc='search',
                        unit='it', disable=not dist.is_main_process(), dynamic_ncols=True)
        with progress:
            while self.epoch < self.epochs:
                start = time.perf_counter()
                losses = self._train_epoch(self.epoch, iters, progress)
                self._end_epoch(losses, time.perf_counter() - start)
        self.search_log.close()
        return self.history

    def _train_epoch(self, epoch: int, iters: int, progress: tqdm
                     ) -> tuple[float, float | None, float | None]:
        """One epoch; the means of the weight loss, the architecture loss and the
        architecture cost (each None where no step measured it)."""
        self.model.train()
        train_arch = epoch >= self.arch_start_epoch
        if self.single_path:
            self.arch_params.uniform = not train_arch
        k = self.accumulative_counts
        weight_groups = _groups(self.weight_loader.for_pass(epoch), k)
        arch_batches = self._arch_batches(epoch) if train_arch else None
        with_cost = train_arch and self.architect.cost is not None
        totals = torch.zeros(3, dtype=torch.float64)
        interval = torch.zeros(3, dtype=torch.float64)
        for i, weight_batches in zip(range(iters), weight_groups):
            arch_group = None if arch_batches is None else [next(arch_batches) for _ in range(k)]
            try:
                losses = self.train_step(weight_batches, arch_group)
            except NonFiniteStep as error:
                raise NasError(f'non-finite {error.what} at epoch {epoch + 1}/{self.epochs}, '
                               f'iteration {i + 1}/{iters} (both 1-based): the step was not '
                               f'taken; {self._how_to_resume()}') from error
            interval += torch.tensor([value or 0.0 for value in losses], dtype=torch.float64)
            progress.update(1)
            if (i + 1) % self.log_interval == 0 or i + 1 == iters:
                totals += interval
                done = (i % self.log_interval) + 1
                self._log_interval(epoch, i + 1, iters, interval / done, train_arch, with_cost)
                interval.zero_()
        if arch_batches is not None:
            arch_batches.close()
        means = [float(m) for m in dist.mean_over_ranks(totals / iters)]
        return (means[0], means[1] if train_arch else None, means[2] if with_cost else None)

    def train_step(self, weight_batches: Sequence[Any],
                   arch_batches: Sequence[Any] | None = None) -> StepLosses:
        """One iteration: resample the architecture, an architecture step on
        ``arch_batches`` (none in the warm-up: pass None), a weight step on
        ``weight_batches`` (each a list of ``accumulative_counts``
        micro-batches), then the iteration-based schedulers advance. Returns
        the weight loss, the architecture loss (means over the micro-batches)
        and the architecture cost.

        A non-finite loss or gradient raises :class:`NonFiniteStep` before the
        step it belongs to (an architecture step of the same iteration may
        have been taken already)."""
        if len(weight_batches) != self.accumulative_counts or (
                arch_batches is not None and len(arch_batches) != self.accumulative_counts):
            raise ValueError(f'an iteration takes {self.accumulative_counts} micro-batches of '
                             'each half')
        self.arch_params.resample(self.global_step)
        arch_loss = arch_cost = None
        if arch_batches is not None:
            with self._arch_step_paths():
                arch_loss, arch_cost = self.architect.step_accumulated(arch_batches,
                                                                       weight_batches[0])
        weight_loss = self._weight_step(weight_batches)
        self.precision.update()
        self.global_step += 1
        self.last_lr = self.weight_lr
        self.schedules.after_iteration()
        return StepLosses(weight_loss, arch_loss, arch_cost)

    def _arch_step_paths(self):
        """What an architecture step runs: the sampled path, or every op (``arch_paths='all'``)."""
        if self.arch_paths == 'all':
            return self.arch_params.all_paths()
        return contextlib.nullcontext()

    def _weight_step(self, batches: Sequence[Any]) -> float:
        """Back-propagate each micro-batch's loss / k (DDP synchronises only the last), then
        drop the architecture gradients, clip and step; returns the mean loss."""
        zero_grads(self.weight_parameters + self.arch_parameters)
        losses = []
        for index, batch in enumerate(batches):
            with self._no_sync(last=index == len(batches) - 1):
                loss, _ = backward_loss(self.forward, batch, (), self.precision,
                                        scale=1.0 / len(batches))
            losses.append(loss)
        loss = torch.stack(losses).mean()
        zero_grads(self.arch_parameters)
        # Under loss scaling an overflowing gradient is the scaler's to skip.
        check_step('weight', loss, [] if self.precision.scaler_checks_gradients
                   else [p.grad for p in self.weight_parameters])
        self.precision.unscale_(self.weight_optimizer)
        if self.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.weight_parameters, self.grad_clip)
        self.precision.step(self.weight_optimizer)
        return float(loss)

    def _no_sync(self, last: bool):
        """DDP's ``no_sync`` for a micro-batch that is not the last of its step."""
        if last or not isinstance(self.forward, DistributedDataParallel):
            return contextlib.nullcontext()
        return self.forward.no_sync()

    def _log_interval(self, epoch: int, iteration: int, iters: int, means: torch.Tensor,
                      train_arch: bool, with_cost: bool) -> None:
        text = (f'weight loss {means[0]:.4f}' + (f', arch loss {means[1]:.4f}' if train_arch else '')
                + (f', arch cost {means[2]:.4g}' if with_cost else ''))
        self.logger.info(f'epoch {epoch + 1}/{self.epochs} iter {iteration}/{iters}: {text}')

    def _end_epoch(self, losses: tuple[float, float | None, float | None], seconds: float) -> None:
        epoch = self.epoch
        lr = self.last_lr
        self.schedules.after_epoch()
        weight_loss, arch_loss, arch_cost = losses
        record = dict(epoch=epoch, step=self.global_step, weight_loss=weight_loss,
                      arch_loss=arch_loss, arch_cost=arch_cost, lr=lr,
                      arch_weights=self.arch_weights_lists(), metrics={})
        if self.on_epoch_end is not None:
            metrics = self.on_epoch_end(self, epoch) or {}
            record['metrics'] = {str(k): float(v) for k, v in metrics.items()}
        self.history.append(record)
        self.epoch = epoch + 1
        self.result = None  # a result recorded before this epoch (epochs were raised) is stale
        self.search_log.add(epoch_scalars(record), step=self.epoch)
        self.save_checkpoint()
        if dist.is_main_process():
            plot_arch_weights(self.history, self.work.plots_dir,
                              getattr(self.model, 'arch_op_names', None),
                              getattr(self.model, 'arch_row_names', None))
        arch_text = 'warm-up' if arch_loss is None else f'arch loss {arch_loss:.4f}'
        cost_text = '' if arch_cost is None else f', arch cost {arch_cost:.4g}'
        metrics_text = ''.join(f', {k} {v:.4f}' for k, v in record['metrics'].items())
        self.logger.info(f'epoch {epoch + 1}/{self.epochs}: weight loss {weight_loss:.4f}, '
                         f'{arch_text}{cost_text}, lr {lr:.3g}{metrics_text}, {seconds:.1f} s')

    # -- results -------------------------------------------------------------------
    @property
    def weight_lr(self) -> float:
        return float(self.weight_optimizer.param_groups[0]['lr'])

    def arch_weights(self) -> dict[str, torch.Tensor]:
        """The normalised architecture weights per group (detached)."""
        with torch.no_grad():
            if hasattr(self.model, 'arch_weights'):
                weights = self.model.arch_weights()
            else:
                weights = {name: self.arch_params.softmax(name) for name in self.arch_params.names()}
            return {name: tensor.detach() for name, tensor in weights.items()}

    def arch_weights_lists(self) -> dict[str, list]:
        return {name: tensor.cpu().tolist() for name, tensor in self.arch_weights().items()}


def _build_optimizer(cfg: dict, params: list[nn.Parameter], what: str) -> torch.optim.Optimizer:
    """A torch.optim optimizer from ``dict(type='SGD', lr=...)``; bad settings are NasErrors."""
    try:
        return build_component(OPTIMIZERS, cfg, what, default_args=dict(params=params))
    except (ValueError, TypeError) as error:
        raise NasError(f'bad {what} {dict(cfg)}: {first_line(error)}') from error


def _iters_of_epochs(history: list[dict]) -> list[int]:
    """The iterations each trained epoch took, from the history's global steps."""
    steps = [record['step'] for record in history]
    return [end - start for start, end in zip([0] + steps, steps)]


def _groups(batches: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive lists of ``size`` batches; an incomplete last one is dropped."""
    iterator = iter(batches)
    while len(group := list(itertools.islice(iterator, size))) == size:
        yield group


def _check_arch_paths(arch_paths: str, single_path: bool) -> None:
    if arch_paths not in ARCH_PATHS:
        raise NasError(f"arch_paths must be 'sampled' or 'all', got {arch_paths!r}")
    if arch_paths == 'all' and not single_path:
        raise NasError("arch_paths='all' runs every op in the architecture steps of a "
                       'single-path search; without single_path=True every step runs every op '
                       "already: set single_path=True or arch_paths='sampled'")
