"""Is the work directory one directory for every rank? Checked once, at the start of a run.

Every rank reads what rank 0 writes there: the supernet checkpoint, the round
checkpoint it resumes from, a diagnosis's result files. On several nodes a
work directory on a node-local disk is a different directory on every node,
and such a run would go wrong late and quietly (a rank that finds no
checkpoint trains from scratch). So, before the run writes anything, rank 0
writes a token file there (a name and content unique to this run, written
atomically), every rank looks for it, and if one cannot read it, every rank
stops with one line naming the directory and the ranks and hosts that cannot
see it. The token is removed after. One process has nothing to check.
"""
from __future__ import annotations

import os
import socket
import time
import uuid
from pathlib import Path

from nas_tasks import dist
from nas_tasks.errors import NasError, first_line
from nas_tasks.io import atomic_write_text
from nas_tasks.validation import seconds_from_environment

__all__ = ['check_shared_work_dir', 'WAIT_ENV', 'DEFAULT_WAIT_SECONDS']

TOKEN_PREFIX = '.shared_work_dir_check_'
# A network file system may cache that a file does not exist (NFS's negative
# lookup cache lasts up to its attribute-cache time, 60 s by default), so a rank
# looks again for this long before it says it cannot see the token.
WAIT_ENV = 'NAS_TASKS_SHARED_DIR_WAIT'
DEFAULT_WAIT_SECONDS = 60.0
POLL_SECONDS = 0.5


def check_shared_work_dir(work_dir: str | os.PathLike) -> None:
    """Stop every rank with one line unless every rank sees the token rank 0 writes in ``work_dir``."""
    if dist.get_world_size() == 1:
        return
    work_dir = Path(work_dir)
    wait_seconds = seconds_from_environment(WAIT_ENV, DEFAULT_WAIT_SECONDS, allow_zero=True)

    def write_token() -> str:
        token = uuid.uuid4().hex
        try:
            work_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(work_dir / f'{TOKEN_PREFIX}{token}', token)
        except OSError as error:
            raise NasError(f'cannot write in the work directory {work_dir}: '
                           f'{first_line(error)}') from None
        return token
    # Every rank gets the token once rank 0 has written it (or rank 0's one line).
    token = dist.on_main_process(write_token)
    token_file = work_dir / f'{TOKEN_PREFIX}{token}'
    seen = _sees_token(token_file, token, wait_seconds)
    # The gather is the point after which no rank reads the token any more.
    views = dist.gather_objects((seen, socket.gethostname()))
    if dist.is_main_process():
        token_file.unlink(missing_ok=True)
    blind = [f'rank {rank} on {host}' for rank, (seen, host) in enumerate(views) if not seen]
    if blind:
        raise NasError(
            f'the work directory {work_dir} must be on a file system every node shares: '
            f"{', '.join(blind)} cannot see the file rank 0 on {views[0][1]} wrote there; "
            'give --work-dir a path on a shared file system (NFS, Lustre, GPFS, ...)')


def _sees_token(token_file: Path, token: str, wait_seconds: float) -> bool:
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            if token_file.read_text() == token:
                return True
        except OSError:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)
