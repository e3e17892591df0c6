"""torch.distributed in one place: backend choice, rank helpers, gathering.

One code path serves 1 process and N: every helper degrades to the trivial
single-process behaviour when no process group is initialised.
"""
from __future__ import annotations

import contextlib
import os
from datetime import timedelta
from typing import Any, Sequence

import torch
import torch.distributed as torch_dist

from nas_tasks.errors import NasError


def use_cuda() -> bool:
    return torch.cuda.is_available()


def device() -> torch.device:
    """This process's device: its GPU under torchrun on CUDA, else the CPU."""
    return torch.device('cuda', torch.cuda.current_device()) if use_cuda() else torch.device('cpu')


def init_distributed(launcher: str) -> None:
    """Initialise the process group for ``--launcher pytorch`` (torchrun).

    nccl on GPU, gloo on CPU. The group is created here, before any mmengine
    Runner, because the Runner's own initialisation calls
    ``torch.cuda.set_device`` and so fails on CPU; an existing group makes it
    skip that step.
    """
    if launcher == 'none':
        return
    if launcher != 'pytorch':
        raise NasError(f"unknown launcher '{launcher}'; use 'none' or 'pytorch' (torchrun)")
    if 'RANK' not in os.environ or 'WORLD_SIZE' not in os.environ:
        raise NasError("--launcher pytorch needs torchrun's environment (RANK, WORLD_SIZE); "
                       'start it with: torchrun --nproc_per_node N tools/search.py ...')
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


def is_distributed() -> bool:
    return torch_dist.is_available() and torch_dist.is_initialized()


def get_rank() -> int:
    return torch_dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return torch_dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return get_rank() == 0


def barrier() -> None:
    if is_distributed():
        torch_dist.barrier()


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not is_distributed():
        return obj
    holder = [obj]
    torch_dist.broadcast_object_list(holder, src=0)
    return holder[0]


def evaluate_split(items: Sequence[Any], evaluate_fn) -> list[Any]:
    """Evaluate ``items`` split across ranks; every rank gets all results in order.

    Rank r evaluates items r, r + world, r + 2 * world, ...
    """
    rank, world = get_rank(), get_world_size()
    mine = list(range(rank, len(items), world))
    local = evaluate_fn([items[i] for i in mine]) if mine else []
    if world == 1:
        return list(local)
    gathered: list[Any] = [None] * world
    torch_dist.all_gather_object(gathered, list(zip(mine, local)))
    ordered: list[Any] = [None] * len(items)
    for pairs in gathered:
        for index, result in pairs:
            ordered[index] = result
    return ordered


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
    ``torch.distributed.is_initialized()`` first, so answering False here
    turns them into their single-process versions. The group itself is left
    untouched, for the gathering that follows.
    """
    is_initialized = torch_dist.is_initialized
    torch_dist.is_initialized = lambda: False
    try:
        yield
    finally:
        torch_dist.is_initialized = is_initialized
