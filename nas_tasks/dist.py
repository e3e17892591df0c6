"""torch.distributed in one place: backend choice, rank helpers, reductions, gathering.

Every rank helper of the suite is here, built on :mod:`mmengine.dist` (whose
collectives move tensors to the backend's device and back: the GPU for nccl,
where they are for gloo). One code path serves 1 process and N: every helper
degrades to the trivial single-process answer when no process group is
initialised, or inside :func:`process_local`.

Two process groups, two timeouts, so that no rank waits for a day on a peer
that died while a rank that waits for a slow peer is not killed:

- The **default group** (nccl on GPU, gloo on CPU) carries the data-parallel
  phases: DDP's gradient all-reduce, :func:`all_reduce_mean_`,
  :func:`on_every_rank`, :func:`barrier`. Ranks there move in step, so a
  collective that waits long means a dead or stuck peer: its timeout is
  short, ``NAS_TASKS_COLLECTIVE_TIMEOUT`` seconds (default 1800, torch's
  own default), and the rank that times out raises, so torchrun or Slurm
  stops (or restarts) the job.
- The **object group** (always gloo, on the CPU) carries the object
  collectives: :func:`broadcast_object`, :func:`gather_objects`,
  :func:`evaluate_split`'s result gather, :func:`raise_if_any_rank_failed`,
  :func:`on_main_process`. There a rank legitimately waits while its peers
  evaluate their candidates (a proxy training takes hours) or rank 0 writes
  the search's files, so its timeout is long, ``NAS_TASKS_GATHER_TIMEOUT``
  seconds (default 86400, a day). A failure is sent over it at once, never
  left to that timeout (:func:`on_main_process`, :func:`raise_if_any_rank_failed`).
"""
from __future__ import annotations

import contextlib
import os
from datetime import timedelta
from typing import Any, Callable, Sequence, TypeVar

import torch
import torch.distributed as torch_dist
from mmengine import dist as mm_dist
from mmengine.dist import get_rank, get_world_size, is_distributed, is_main_process

from nas_tasks.errors import NasError
from nas_tasks.launchers import prepare_environment
from nas_tasks.validation import seconds_from_environment

__all__ = ['use_cuda', 'device', 'init_distributed', 'ddp_wrapper_cfg', 'is_distributed',
           'get_rank', 'get_world_size', 'is_main_process', 'barrier', 'broadcast_object',
           'gather_objects', 'evaluate_split', 'longest_first_shares', 'rank_range',
           'local_slice', 'all_reduce_mean_', 'mean_over_ranks', 'on_every_rank',
           'all_gather_cat', 'raise_if_any_rank_failed', 'process_local', 'on_main_process',
           'object_group', 'COLLECTIVE_TIMEOUT_VARIABLE', 'GATHER_TIMEOUT_VARIABLE',
           'collective_timeout', 'gather_timeout']

# Seconds a collective of the default group waits (the data-parallel phases).
COLLECTIVE_TIMEOUT_VARIABLE = 'NAS_TASKS_COLLECTIVE_TIMEOUT'
DEFAULT_COLLECTIVE_TIMEOUT = 30 * 60
# Seconds an object collective waits (a rank waiting for its peers' candidates).
GATHER_TIMEOUT_VARIABLE = 'NAS_TASKS_GATHER_TIMEOUT'
DEFAULT_GATHER_TIMEOUT = 24 * 3600

T = TypeVar('T')


def use_cuda() -> bool:
    return torch.cuda.is_available()


def device() -> torch.device:
    """This process's device: its GPU under torchrun on CUDA, else the CPU."""
    return torch.device('cuda', torch.cuda.current_device()) if use_cuda() else torch.device('cpu')


def init_distributed(launcher: str) -> None:
    """Initialise the process group for ``--launcher pytorch`` (torchrun).

    nccl on GPU, gloo on CPU. Not mmengine's ``init_dist``: that calls
    ``torch.cuda.set_device`` whatever the backend (so fails on CPU) and sets
    the multiprocessing start method. The group is created here, before any
    mmengine Runner, whose own initialisation would do the same; an existing
    group makes it skip that step.
    """
    prepare_environment(launcher)
    if launcher == 'none':
        return
    if torch_dist.is_initialized():
        return
    if use_cuda():
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)))
    torch_dist.init_process_group('nccl' if use_cuda() else 'gloo', timeout=collective_timeout(),
                                  **_restart_safe_store())
    object_group()  # created now, by every rank at the same point


def _restart_safe_store() -> dict:
    """``init_process_group``'s store arguments: torchrun's agent store under a prefix of
    its own per restart, where torchrun lends its store; else none (``env://``).

    torchrun's elastic agent keeps one store across the restarts of its workers
    (``--max-restarts``), and the dead attempt's keys stay in it: a restarted rank
    may read the address a dead peer published and fail to connect ("Gloo
    connectFullMesh failed ... Connection refused", pytorch/pytorch#167288). Keys
    under ``attempt_<TORCHELASTIC_RESTART_COUNT>/`` are this attempt's only.
    """
    if os.environ.get('TORCHELASTIC_USE_AGENT_STORE') != str(True):
        return {}
    agent_store = torch_dist.TCPStore(os.environ['MASTER_ADDR'], int(os.environ['MASTER_PORT']),
                                      int(os.environ['WORLD_SIZE']), is_master=False,
                                      timeout=collective_timeout())
    attempt = os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')
    return dict(store=torch_dist.PrefixStore(f'nas_tasks/attempt_{attempt}/', agent_store),
                rank=int(os.environ['RANK']), world_size=int(os.environ['WORLD_SIZE']))


def collective_timeout() -> timedelta:
    """How long a data-parallel collective waits: ``NAS_TASKS_COLLECTIVE_TIMEOUT`` seconds."""
    return _timeout(COLLECTIVE_TIMEOUT_VARIABLE, DEFAULT_COLLECTIVE_TIMEOUT)


def gather_timeout() -> timedelta:
    """How long an object collective waits: ``NAS_TASKS_GATHER_TIMEOUT`` seconds."""
    return _timeout(GATHER_TIMEOUT_VARIABLE, DEFAULT_GATHER_TIMEOUT)


def _timeout(variable: str, default: float) -> timedelta:
    return timedelta(seconds=seconds_from_environment(variable, default))


# (default group, object group): the object group belongs to one default group, and a
# process that destroys and creates process groups again (tests) gets a new one.
_object_group: tuple[Any, Any] | None = None


def object_group():
    """The gloo group of the object collectives, with the long timeout (None in one process).

    Created on first use (every rank reaches its first object collective at
    the same point, as ``new_group`` requires), or by :func:`init_distributed`.
    """
    global _object_group
    if not is_distributed():
        return None
    world = torch_dist.group.WORLD
    if _object_group is None or _object_group[0] is not world:
        _object_group = (world, torch_dist.new_group(backend='gloo', timeout=gather_timeout()))
    return _object_group[1]


def barrier() -> None:
    """Wait for every rank, on the default group (short timeout): for ranks moving in step.

    To wait for rank 0's own work (files, an export), use :func:`on_main_process`.
    """
    mm_dist.barrier()


def ddp_wrapper_cfg(find_unused_parameters: bool) -> dict:
    """The mmengine ``model_wrapper_cfg`` for the current device.

    A one-shot supernet needs ``find_unused_parameters``: it runs one path per
    step, so the unchosen blocks get no gradient on any rank.
    """
    cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=find_unused_parameters,
               broadcast_buffers=False)
    if not use_cuda():
        cfg['device_ids'] = None
    return cfg


# -- objects ---------------------------------------------------------------------------

def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    holder = [obj]
    mm_dist.broadcast_object_list(holder, src=0, group=object_group())
    return holder[0]


def gather_objects(obj: Any) -> list[Any]:
    """``obj`` of every rank, in rank order, on every rank (a one-item list in one process)."""
    return mm_dist.all_gather_object(obj, group=object_group())


def evaluate_split(items: Sequence[Any], evaluate_fn,
                   costs: Sequence[float] | None = None) -> list[Any]:
    """Evaluate ``items`` split across ranks; every rank gets all results in order.

    Rank r evaluates items r, r + world, r + 2 * world, ...; with ``costs`` (a
    guess of each item's evaluation time, the same on every rank), the shares of
    :func:`longest_first_shares` instead. Either way no rank asks another.
    """
    rank, world = get_rank(), get_world_size()
    if costs is None:
        mine = list(range(rank, len(items), world))
    else:
        mine = longest_first_shares(costs, world)[rank]
    local = evaluate_fn([items[i] for i in mine]) if mine else []
    if world == 1:
        return list(local)
    ordered: list[Any] = [None] * len(items)
    for pairs in gather_objects(list(zip(mine, local))):
        for index, result in pairs:
            ordered[index] = result
    return ordered


def longest_first_shares(costs: Sequence[float], world: int) -> list[list[int]]:
    """The item indices of each rank, dealt longest first: every item, costliest first
    (ties: the earlier), goes to the rank with the least cost so far (ties: the lower).

    A round whose candidates differ in cost (proxy trainings of small and large
    networks) then ends when its costliest share does, not when the unluckiest
    round-robin share does. Each share is in item order.
    """
    loads, shares = [0.0] * world, [[] for _ in range(world)]
    for index in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        rank = min(range(world), key=lambda r: (loads[r], r))
        shares[rank].append(index)
        loads[rank] += costs[index]
    return [sorted(share) for share in shares]


def rank_range(count: int, rank: int | None = None, world: int | None = None) -> range:
    """This rank's contiguous share of ``count`` items, in rank order.

    The first ``count % world`` ranks take one item more; a rank may get none.
    """
    rank = get_rank() if rank is None else rank
    world = get_world_size() if world is None else world
    size, extra = divmod(count, world)
    start = rank * size + min(rank, extra)
    return range(start, start + size + (rank < extra))


def local_slice(batch: torch.Tensor) -> torch.Tensor:
    """This rank's contiguous 1/world of ``batch`` (dim 0), whose size divides by the world size."""
    world = get_world_size()
    if world == 1:
        return batch
    if len(batch) % world:
        raise NasError(f'a batch of {len(batch)} does not split over {world} processes')
    size = len(batch) // world
    return batch[get_rank() * size:(get_rank() + 1) * size]


# -- tensors ---------------------------------------------------------------------------

def all_reduce_mean_(tensors: Sequence[torch.Tensor]) -> None:
    """Replace each floating-point tensor by its mean over the ranks (one collective per dtype)."""
    if tensors:
        mm_dist.all_reduce_params([tensor.detach() for tensor in tensors], op='mean')


def mean_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """The mean of ``values`` over the ranks, as a new tensor on the CPU."""
    values = values.detach().cpu().clone()
    mm_dist.all_reduce(values, op='mean')
    return values


def on_every_rank(flag: bool) -> bool:
    """Whether ``flag`` holds on every rank: the same answer on all of them."""
    flags = torch.tensor([int(flag)])
    mm_dist.all_reduce(flags, op='min')
    return bool(flags[0])


def all_gather_cat(tensor: torch.Tensor | None) -> torch.Tensor:
    """Every rank's ``tensor`` concatenated along dim 0 in rank order, on every rank.

    The first dimension may differ between ranks; ``None`` stands for a rank
    with nothing to give. The result lies where ``tensor`` lay (the CPU for None).
    """
    shapes = gather_objects(None if tensor is None else (tuple(tensor.shape), tensor.dtype))
    given = [entry for entry in shapes if entry is not None]
    if not given:
        raise NasError('all_gather_cat: no rank gave a tensor')
    if len(shapes) == 1:
        return tensor
    (_, *trailing), dtype = given[0]
    longest = max(shape[0] for shape, _ in given)
    home = tensor.device if tensor is not None else torch.device('cpu')
    # all_gather wants equal shapes: every rank pads its part to the longest.
    padded = torch.zeros(longest, *trailing, dtype=dtype, device=home)
    if tensor is not None:
        padded[:len(tensor)] = tensor
    parts = mm_dist.all_gather(padded)
    return torch.cat([part[:entry[0][0]] for part, entry in zip(parts, shapes)
                      if entry is not None])


def raise_if_any_rank_failed(error: BaseException | None) -> None:
    """Raise on every rank if ``error`` happened on any of them.

    Called before a collective that the failed rank would never reach, so the
    others do not wait for it until the timeout, and every rank records the
    same failure.
    """
    messages = gather_objects(None if error is None else f'{type(error).__name__}: {error}')
    for rank, message in enumerate(messages):
        if message is not None:
            if error is not None:
                raise error
            raise RuntimeError(f'rank {rank} failed: {message}')


def on_main_process(work: Callable[[], T]) -> T:
    """Run ``work`` on rank 0 only; every rank returns its value, or raises its error.

    For what rank 0 alone does while the others wait (writing a checkpoint,
    the search's files, an export): they wait on the object group, as long as
    rank 0 works, and learn of a failure at once instead of at a barrier's
    timeout. Rank 0 raises its own exception; the others raise a
    :class:`NasError` with its message when it was one (the same line on
    every rank), else a RuntimeError naming it. In one process: ``work()``.
    """
    if not is_distributed():
        return work()
    outcome = None
    if is_main_process():
        try:
            outcome = ('ok', work())
        except BaseException as error:
            broadcast_object(('failed', isinstance(error, NasError), type(error).__name__,
                              str(error)))
            raise
    outcome = broadcast_object(outcome)
    if outcome[0] == 'ok':
        return outcome[1]
    _, is_nas_error, kind, message = outcome
    if is_nas_error:
        raise NasError(message)
    raise RuntimeError(f'rank 0 failed: {kind}: {message}')


@contextlib.contextmanager
def process_local():
    """Make this process look like a single-process run to torch.distributed users.

    Each rank trains a different candidate, but with a process group present
    mmengine's Runner broadcasts its timestamp and the initial weights from
    rank 0, its DefaultSampler shards the data by rank, and some mmdet heads
    all-reduce their loss normalisers (``reduce_mean``). Across ranks these
    calls would pair up collectives of different models, overwrite one
    candidate's initial weights with another's, or hang when ranks hold
    different numbers of candidates. All of them ask
    ``torch.distributed.is_initialized()`` first (mmengine's dist helpers, and
    so this module's, too), so answering False here turns them into their
    single-process versions. The group itself is left untouched, for the
    gathering that follows.
    """
    is_initialized = torch_dist.is_initialized
    torch_dist.is_initialized = lambda: False
    try:
        yield
    finally:
        torch_dist.is_initialized = is_initialized
