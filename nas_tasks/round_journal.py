"""The round journal: what a round proposed, and each of its candidates as soon as it is scored.

A round checkpoint comes only at the end of a round, and a round of proxy
trainings can take a day on many GPUs. So that a dead worker costs the
candidate it was evaluating and not the round, the loop writes, under
``<work_dir>/round_journal/round_<r>/``:

- ``proposals.json``: the round's architectures, by rank 0, before they are
  evaluated. A restarted round checks that the strategy (its RNG restored
  from the checkpoint) proposes them again; other proposals are refused in
  one line, since the journaled results would then belong to another search.
- ``<key>.json``: one file per finished candidate (its result, failures
  included), by the rank that scored it. One file each, written atomically
  (a temporary file renamed over it), so ranks on several nodes never write
  the same file, and a kill mid-write leaves only a temporary file, which is
  ignored. A file that cannot be read (a damaged disk) is ignored with a
  warning: that candidate is evaluated again.

A restarted round evaluates only the candidates without a file. The round's
folder is removed once the checkpoint after it is written.

Results are kept exactly as the estimator returned them (a JSON number
reads back as the same float); non-finite numbers, which strict JSON cannot
hold, are written as ``{"non_finite": "nan"}`` (or ``"inf"``, ``"-inf"``).
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
from pathlib import Path
from typing import Any

from nas_tasks.errors import NasError
from nas_tasks.io import atomic_write_text
from nas_tasks.result import Result

__all__ = ['JOURNAL_DIR', 'RoundJournal']

JOURNAL_DIR = 'round_journal'
PROPOSALS_NAME = 'proposals.json'
ROUND_PREFIX = 'round_'
NON_FINITE_KEY = 'non_finite'


class RoundJournal:
    """The journal of a search's rounds in ``work_dir``; ``canonical(arch)`` is the space's
    canonical string of an architecture (equal archs, equal strings)."""

    def __init__(self, work_dir: Path, canonical, logger: logging.Logger | None = None):
        self.path = Path(work_dir) / JOURNAL_DIR
        self.canonical = canonical
        self.logger = logger or logging.getLogger('nas_tasks')

    def round_dir(self, round_index: int) -> Path:
        return self.path / f'{ROUND_PREFIX}{round_index:06d}'

    def candidate_path(self, round_index: int, arch: dict) -> Path:
        digest = hashlib.sha256(self.canonical(arch).encode('utf-8')).hexdigest()[:24]
        return self.round_dir(round_index) / f'{digest}.json'

    # -- writing -------------------------------------------------------------
    def check_or_record_proposals(self, round_index: int, archs: list[dict]) -> None:
        """Record the round's proposals; if a journal of this round exists, check them instead.

        Rank 0 only. A NasError if the journal holds other proposals for this round.
        """
        path = self.round_dir(round_index) / PROPOSALS_NAME
        journaled = self._read(path)
        if journaled is None:
            _write_json(path, dict(round=round_index, archs=archs))
            return
        before = [self.canonical(arch) for arch in journaled.get('archs', [])]
        now = [self.canonical(arch) for arch in archs]
        if before != now:
            where = next((i for i, (a, b) in enumerate(zip(before, now)) if a != b),
                         min(len(before), len(now)))
            raise NasError(
                f'{path} holds the {len(before)} architectures round {round_index} proposed '
                f'before the search was interrupted, but the strategy now proposes {len(now)} '
                f'others (the first difference at candidate {where}): the config or the code '
                'changed since. Resume with the same config and code, or delete '
                f'{self.round_dir(round_index)} to evaluate the round afresh')

    def record(self, round_index: int, arch: dict, result: Result) -> None:
        """Record a finished candidate of the round (by the rank that scored it)."""
        _write_json(self.candidate_path(round_index, arch),
                    dict(round=round_index, arch=arch, result=result.to_dict()))

    def clear_before(self, round_index: int) -> None:
        """Remove the journals of the rounds before ``round_index`` (their checkpoint is
        written); rank 0 only. Later rounds' journals stay: another rank may write there."""
        if not self.path.is_dir():
            return
        for folder in self.path.glob(f'{ROUND_PREFIX}*'):
            index = folder.name[len(ROUND_PREFIX):]
            if index.isdigit() and int(index) < round_index:
                shutil.rmtree(folder, ignore_errors=True)

    def clear(self) -> None:
        """Remove the whole journal (a new search in this work dir); rank 0 only."""
        shutil.rmtree(self.path, ignore_errors=True)

    # -- reading -------------------------------------------------------------
    def finished(self, round_index: int) -> dict[str, Result]:
        """The round's finished candidates: canonical arch -> its result."""
        folder = self.round_dir(round_index)
        if not folder.is_dir():
            return {}
        results = {}
        # Temporary files of an interrupted write start with a dot: never read.
        for path in sorted(folder.glob('[!.]*.json')):
            if path.name == PROPOSALS_NAME:
                continue
            entry = self._read(path)
            if entry is None:
                continue
            try:
                arch, result = entry['arch'], Result.from_dict(_decode(entry['result']))
            except (KeyError, TypeError, ValueError, AttributeError) as error:
                self._ignore(path, f'it is not a candidate entry ({type(error).__name__}: {error})')
                continue
            if entry.get('round') != round_index or path != self.candidate_path(round_index, arch):
                self._ignore(path, 'it names another round or architecture than its place')
                continue
            results[self.canonical(arch)] = result
        return results

    def _read(self, path: Path) -> Any:
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding='utf-8'))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            self._ignore(path, f'it cannot be read ({type(error).__name__}: {error})')
            return None

    def _ignore(self, path: Path, why: str) -> None:
        self.logger.warning(f'round journal: ignoring {path}: {why}; what it recorded is done again')


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(_encode(obj), allow_nan=False) + '\n')


def _encode(value: Any) -> Any:
    """``value`` with non-finite floats as ``{"non_finite": repr}``: strict JSON, read back exactly."""
    if isinstance(value, float) and not math.isfinite(value):
        return {NON_FINITE_KEY: repr(value)}
    if isinstance(value, dict):
        return {key: _encode(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(item) for item in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {NON_FINITE_KEY}:
            return float(value[NON_FINITE_KEY])
        return {key: _decode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode(item) for item in value]
    return value
