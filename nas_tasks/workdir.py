"""The rules of a search's work directory, shared by the search loop and the
differentiable trainer: file names, when a directory may be (re)used, the log
file, and checkpoints that survive a kill in the middle of a write.

Checkpoints: every save first moves the latest checkpoint aside to
``search_state.prev.pth``, then writes the new one atomically. A resume reads
the latest; when it is missing or unreadable (a truncated file, a disk that
filled up) it falls back to the previous one, says so in one line, and the
search repeats one round (or epoch) instead of losing everything.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from mmengine.logging import MMLogger

from nas_tasks.checkpoint import safe_torch_load
from nas_tasks.errors import NasError
from nas_tasks.io import atomic_torch_save

CHECKPOINT_NAME = 'search_state.pth'
PREVIOUS_CHECKPOINT_NAME = 'search_state.prev.pth'
BEST_ARCH_NAME = 'best_arch.json'
CANDIDATES_NAME = 'candidates.jsonl'
TOP_CANDIDATES_NAME = 'top_candidates.json'
LOG_NAME = 'search.log'
PLOTS_DIR = 'plots'


class SearchWorkDir:
    """One search's work directory (it need not exist yet)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        # False once the latest checkpoint proved unreadable: the next save then
        # replaces it without moving it over the good previous one.
        self._latest_readable = True
        # Set when a resume fell back to the previous checkpoint: the line that says so.
        self.fallback_note: str | None = None

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT_NAME

    @property
    def previous_checkpoint_path(self) -> Path:
        return self.path / PREVIOUS_CHECKPOINT_NAME

    @property
    def best_arch_path(self) -> Path:
        return self.path / BEST_ARCH_NAME

    @property
    def plots_dir(self) -> Path:
        return self.path / PLOTS_DIR

    def has_checkpoint(self) -> bool:
        return self.checkpoint_path.is_file() or self.previous_checkpoint_path.is_file()

    def check(self, resume: bool) -> None:
        """Refuse to reuse a directory by accident, or to resume what cannot be resumed."""
        has_results = self.best_arch_path.exists()
        if not resume:
            if self.has_checkpoint() or has_results:
                raise NasError(f'work dir {self.path} already holds a search; pass --resume to '
                               'continue it, or choose another --work-dir')
        elif has_results and not self.has_checkpoint():
            raise NasError(f'work dir {self.path} holds {BEST_ARCH_NAME} but no {CHECKPOINT_NAME} '
                           'to resume from; choose another --work-dir for a new search (its '
                           'results stay where they are)')

    def open_log(self) -> logging.Logger:
        """The search's logger, writing (appending) to ``search.log``; call once the directory is accepted."""
        self.path.mkdir(parents=True, exist_ok=True)
        name = f'nas_tasks.search.{self.path.resolve()}'
        if MMLogger.check_instance_created(name):  # a second run on the same directory in this process
            return MMLogger.get_instance(name)
        return MMLogger.get_instance(name, logger_name='nas_tasks', file_mode='a',
                                     log_file=str(self.path / LOG_NAME))

    def load_checkpoint(self, logger: logging.Logger | None = None) -> dict | None:
        """The latest readable checkpoint as a dict, or None when there is none.

        Falls back to the previous checkpoint when the latest is missing or
        unreadable, with one warning line (on ``logger``, else kept in
        :attr:`fallback_note` for a log that opens later); a NasError when
        neither can be read.
        """
        latest, previous = self.checkpoint_path, self.previous_checkpoint_path
        if not latest.is_file() and not previous.is_file():
            return None
        try:
            return _as_state(latest, safe_torch_load(latest))
        except NasError as error:
            if not previous.is_file():
                raise
            self._latest_readable = False
            reason = str(error) if latest.is_file() else f'{latest} is missing'
            state = _as_state(previous, safe_torch_load(previous))
            self.fallback_note = f'{reason}; resuming from the previous checkpoint {previous.name} instead'
            if logger is not None:
                logger.warning(self.fallback_note)
            return state

    def save_checkpoint(self, state: Any) -> None:
        """Move the latest checkpoint aside as the previous one, then write ``state`` atomically."""
        latest = self.checkpoint_path
        if latest.is_file() and self._latest_readable:
            os.replace(latest, self.previous_checkpoint_path)
        atomic_torch_save(state, latest)
        self._latest_readable = True


def _as_state(path: Path, state: Any) -> dict:
    if not isinstance(state, dict):
        raise NasError(f'checkpoint {path} holds a {type(state).__name__}, not a search state; '
                       'was it written by another program? Choose another --work-dir')
    return state


def check_state_keys(state: dict, keys: tuple[str, ...], path: Path) -> None:
    """One line if a checkpoint that loaded lacks any of ``keys``: it was not written by this search."""
    missing = [key for key in keys if key not in state]
    if missing:
        raise NasError(f"checkpoint {path} is not this search's state (it lacks "
                       f"{', '.join(missing)}); use another --work-dir")
