"""What each ``--launcher`` needs from its environment before the process group starts.

- ``none``: one process, no process group.
- ``pytorch``: torchrun has set RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
  MASTER_PORT (on one node or, through its c10d rendezvous, on several).
- ``slurm``: ``srun`` started one task per process; its variables are turned
  into torchrun's, as mmengine's ``init_dist('slurm')`` does
  (``mmengine.dist.utils._init_dist_slurm``): RANK from SLURM_PROCID,
  WORLD_SIZE from SLURM_NTASKS, LOCAL_RANK from SLURM_LOCALID, MASTER_ADDR the
  first host of SLURM_NODELIST (``scontrol show hostname``) unless already
  set, MASTER_PORT from the environment or 29500. Unlike mmengine's, nothing
  here touches CUDA: :func:`nas_tasks.dist.init_distributed` then creates the
  group (nccl on GPUs, gloo on CPU) the same way for every launcher.
"""
from __future__ import annotations

import os
import shutil
import subprocess

from nas_tasks.errors import NasError

__all__ = ['LAUNCHERS', 'DEFAULT_MASTER_PORT', 'prepare_environment', 'slurm_environment',
           'add_launcher_argument']

LAUNCHERS = ('none', 'pytorch', 'slurm')
DEFAULT_MASTER_PORT = '29500'  # torch.distributed's default, as mmengine's
SLURM_REQUIRED = ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST')


def prepare_environment(launcher: str) -> None:
    """Check (and, for Slurm, fill in) the environment ``launcher`` leaves to torch.distributed."""
    if launcher not in LAUNCHERS:
        raise NasError(f"unknown launcher '{launcher}'; use one of {', '.join(LAUNCHERS)}")
    if launcher == 'pytorch' and ('RANK' not in os.environ or 'WORLD_SIZE' not in os.environ):
        raise NasError("--launcher pytorch needs torchrun's environment (RANK, WORLD_SIZE); "
                       'start it with: torchrun --nproc_per_node N tools/search.py ...')
    if launcher == 'slurm':
        os.environ.update(slurm_environment(os.environ))


def slurm_environment(environ) -> dict[str, str]:
    """torchrun's variables for this Slurm task, from Slurm's in ``environ``."""
    missing = [name for name in SLURM_REQUIRED if not environ.get(name)]
    if missing:
        raise NasError(f"--launcher slurm needs Slurm's environment, but {', '.join(missing)} "
                       f"{'is' if len(missing) == 1 else 'are'} not set; start it with srun "
                       '(tools/slurm_search.sh), or use --launcher pytorch under torchrun')
    proc_id = _slurm_int(environ, 'SLURM_PROCID')
    return dict(RANK=str(proc_id),
                WORLD_SIZE=str(_slurm_int(environ, 'SLURM_NTASKS')),
                LOCAL_RANK=str(_local_rank(environ, proc_id)),
                MASTER_ADDR=environ.get('MASTER_ADDR') or first_host(environ['SLURM_NODELIST']),
                MASTER_PORT=environ.get('MASTER_PORT') or DEFAULT_MASTER_PORT)


def _slurm_int(environ, name: str) -> int:
    value = environ[name]
    try:
        return int(value)
    except ValueError:
        raise NasError(f'{name} must be an integer, got {value!r}') from None


def _local_rank(environ, proc_id: int) -> int:
    """SLURM_LOCALID; without it, the task's place among this node's GPUs (0 on CPU)."""
    if environ.get('SLURM_LOCALID'):
        return _slurm_int(environ, 'SLURM_LOCALID')
    import torch
    gpus = torch.cuda.device_count()
    return proc_id % gpus if gpus else 0


def first_host(node_list: str) -> str:
    """The first host name of a Slurm node list such as ``node[01-04],gpu7``, expanded by
    ``scontrol show hostname`` (Slurm's own parser), as mmengine does."""
    scontrol = shutil.which('scontrol')
    if scontrol is None:
        raise NasError(f'--launcher slurm: scontrol is not on the PATH to find the first host of '
                       f"SLURM_NODELIST={node_list!r}; set MASTER_ADDR to that node's address")
    result = subprocess.run([scontrol, 'show', 'hostname', node_list], capture_output=True,
                            text=True)
    hosts = result.stdout.split()
    if result.returncode != 0 or not hosts:
        raise NasError(f'--launcher slurm: scontrol show hostname {node_list} gave no host '
                       f"({(result.stderr.strip() or 'no output')[:200]}); set MASTER_ADDR to "
                       "the first node's address")
    return hosts[0]


def add_launcher_argument(parser) -> None:
    """``--launcher none|pytorch|slurm`` on a tool's argparse parser, as mmdet's tools take it."""
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none',
                        help="'pytorch' under torchrun (e.g. tools/dist_search.sh), 'slurm' with "
                        'one srun task per process (e.g. tools/slurm_search.sh)')
