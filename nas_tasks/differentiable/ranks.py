"""What the trainer needs from torch.distributed: reductions and gathering over ranks.

Each degrades to the single-process answer when no process group is up.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.distributed as torch_dist

from nas_tasks import dist


def _all_reduce(values: torch.Tensor, op: torch_dist.ReduceOp) -> torch.Tensor:
    """``values`` reduced over ranks with ``op``, on the CPU."""
    if not dist.is_distributed():
        return values.cpu()
    nccl = torch_dist.get_backend() == 'nccl'  # nccl reduces GPU tensors only
    values = values.to(torch.device('cuda', torch.cuda.current_device()) if nccl else 'cpu')
    torch_dist.all_reduce(values, op=op)
    return values.cpu()


def mean_over_ranks(values: torch.Tensor) -> torch.Tensor:
    return _all_reduce(values, torch_dist.ReduceOp.SUM) / dist.get_world_size()


def on_every_rank(flag: bool) -> bool:
    """Whether ``flag`` holds on every rank: the same answer on all of them."""
    return bool(_all_reduce(torch.tensor([int(flag)]), torch_dist.ReduceOp.MIN)[0])


def gather(obj: Any) -> list[Any]:
    """``obj`` of every rank, in rank order (a one-item list in one process)."""
    if not dist.is_distributed():
        return [obj]
    gathered: list[Any] = [None] * dist.get_world_size()
    torch_dist.all_gather_object(gathered, obj)
    return gathered
