"""What each ``--launcher`` needs from its environment before the process group starts.

``pytorch``: torchrun has set RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
MASTER_PORT. (``slurm`` is to come: it fills the same variables from Slurm's.)
"""
from __future__ import annotations

import os

from nas_tasks.errors import NasError

__all__ = ['LAUNCHERS', 'prepare_environment']

LAUNCHERS = ('none', 'pytorch')


def prepare_environment(launcher: str) -> None:
    """Check (and, for Slurm, fill in) the environment ``launcher`` leaves to torch.distributed."""
    if launcher not in LAUNCHERS:
        raise NasError(f"unknown launcher '{launcher}'; use one of {', '.join(LAUNCHERS)}")
    if launcher == 'pytorch' and ('RANK' not in os.environ or 'WORLD_SIZE' not in os.environ):
        raise NasError("--launcher pytorch needs torchrun's environment (RANK, WORLD_SIZE); "
                       'start it with: torchrun --nproc_per_node N tools/search.py ...')
