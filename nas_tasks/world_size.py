"""A data-parallel state's world size: recorded with the state, checked when it is resumed.

A supernet, a differentiable search network or a shared GAN trained on N
processes saw a total batch of N times the per-process batch at every step.
Resumed on another number of processes, the rest of its training would run
at another batch (and, for a schedule tuned to the batch, another learning
rate per sample) without anyone having asked for it. So every such state
records the world size it was trained on, and resuming it on another one is
refused in one line unless the user says the batch may change
(``tools/search.py --allow-world-size-change``).
"""
from __future__ import annotations

from mmengine.logging import MMLogger

from nas_tasks import dist
from nas_tasks.errors import NasError

__all__ = ['WORLD_SIZE_KEY', 'allow_world_size_change', 'world_size_change_allowed',
           'current_world_size', 'check_resumed_world_size']

WORLD_SIZE_KEY = 'world_size'  # the key under which a state records it
ALLOW_FLAG = '--allow-world-size-change'

_change_allowed = False


def allow_world_size_change(allowed: bool = True) -> None:
    """Let data-parallel states resume on another world size (the user asked for it)."""
    global _change_allowed
    _change_allowed = allowed


def world_size_change_allowed() -> bool:
    return _change_allowed


def current_world_size() -> int:
    """What a data-parallel state records: the number of processes training it now."""
    return dist.get_world_size()


def check_resumed_world_size(saved: int | None, what: str, source, change: str | None = None) -> None:
    """Refuse to resume ``what`` (trained on ``saved`` processes, read from ``source``)
    on another world size, unless allowed; then say in the log that the batch changes.

    ``saved`` None is a state from before world sizes were recorded: accepted.
    ``change`` says what another world size changes, where it is not the total
    batch (a state whose batch settings are totals changes each rank's share).
    """
    current = current_world_size()
    if saved is None or int(saved) == current:
        return
    change = change or (f'its total batch would change from {saved}x to {current}x the '
                        'per-process batch')
    if not _change_allowed:
        raise NasError(
            f'{source} holds {what} trained on {saved} process(es), but this run has {current}: '
            f'{change}. Resume it on {saved} process(es), or pass {ALLOW_FLAG} to go on anyway')
    MMLogger.get_instance('nas_tasks').warning(
        f'{what} was trained on {saved} process(es) and goes on on {current} '
        f'({ALLOW_FLAG}): {change}')
