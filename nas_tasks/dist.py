"""torch.distributed in one place: backend choice, rank helpers, reductions, gathering.

Every rank helper of the suite is here, built on :mod:`mmengine.dist` (whose
collectives move tensors to the backend's device and back: the GPU for nccl,
where they are for gloo). One code path serves 1 process and N: every helper
degrades to the trivial single-process answer when no process group is
initialised, or inside :func:`process_local`.
"""
from __future__ import annotations

import contextlib
import os
from datetime import timedelta
from typing import Any, Sequence

import torch
import torch.distributed as torch_dist
from mmengine import dist as mm_dist
from mmengine.dist import barrier, get_rank, get_world_size, is_distributed, is_main_process

from nas_tasks.errors import NasError
from nas_tasks.launchers import prepare_environment

__all__ = ['use_cuda', 'device', 'init_distributed', 'ddp_wrapper_cfg', 'is_distributed',
           'get_rank', 'get_world_size', 'is_main_process', 'barrier', 'broadcast_object',
           'gather_objects', 'evaluate_split', 'rank_range', 'local_slice', 'all_reduce_mean_',
           'mean_over_ranks', 'on_every_rank', 'all_gather_cat', 'raise_if_any_rank_failed',
           'process_local']


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
    # Ranks wait in the gather while others still evaluate (a proxy training can
    # take hours), so the default 10-30 minute collective timeout is too short.
    timeout = timedelta(seconds=float(os.environ.get('NAS_TASKS_DIST_TIMEOUT', 24 * 3600)))
    if use_cuda():
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)))
        torch_dist.init_process_group('nccl', timeout=timeout)
    else:
        torch_dist.init_process_group('gloo', timeout=timeout)


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
    mm_dist.broadcast_object_list(holder, src=0)
    return holder[0]


def gather_objects(obj: Any) -> list[Any]:
    """``obj`` of every rank, in rank order, on every rank (a one-item list in one process)."""
    return mm_dist.all_gather_object(obj)


def evaluate_split(items: Sequence[Any], evaluate_fn) -> list[Any]:
    """Evaluate ``items`` split across ranks; every rank gets all results in order.

    Rank r evaluates items r, r + world, r + 2 * world, ...
    """
    rank, world = get_rank(), get_world_size()
    mine = list(range(rank, len(items), world))
    local = evaluate_fn([items[i] for i in mine]) if mine else []
    if world == 1:
        return list(local)
    ordered: list[Any] = [None] * len(items)
    for pairs in gather_objects(list(zip(mine, local))):
        for index, result in pairs:
            ordered[index] = result
    return ordered


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
