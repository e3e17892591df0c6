"""One result file per finished candidate: what makes a diagnosis resumable.

A standalone training can take hours. Each one's result is written, atomically,
to its own file as soon as it ends (by the rank that trained it), so a killed
diagnosis loses at most the trainings under way, and a rerun trains only
the candidates without a file. Each file records the recipe it came from; a
rerun with another recipe refuses to mix the two.
"""
from __future__ import annotations

import json
from pathlib import Path

from nas_tasks.errors import NasError
from nas_tasks.io import atomic_write_json, to_json
from nas_tasks.result import Result


class CandidateRecords:
    """The per-candidate result files of one kind (standalone, an ablation) in ``folder``.

    ``recipe`` is the settings that produced them (a JSON-able dict).
    """

    def __init__(self, folder: Path, recipe: dict):
        self.folder = Path(folder)
        self.recipe = json.loads(to_json(recipe))  # as it reads back from a file

    def path(self, candidate_id: str) -> Path:
        return self.folder / f'{candidate_id}.json'

    def read(self, candidate_id: str) -> dict | None:
        """The finished record of a candidate, or None if it has none yet."""
        path = self.path(candidate_id)
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text(encoding='utf-8'))
        except json.JSONDecodeError as error:
            raise NasError(f'{path} is not JSON ({error}); delete it to train that candidate again')
        if record.get('recipe') != self.recipe:
            raise NasError(f'{path} was made with other settings ({to_json(record.get("recipe"))}) '
                           f'than the config now gives ({to_json(self.recipe)}); delete '
                           f'{self.folder} to start this part over, or go back to those settings')
        return record

    def pending(self, candidates: list, retry_failed: bool = False) -> list:
        """The candidates that still need a result (failed ones too, with ``retry_failed``)."""
        def needed(candidate) -> bool:
            record = self.read(candidate.id)
            return record is None or (retry_failed and record['status'] == 'failed')
        return [candidate for candidate in candidates if needed(candidate)]

    def write(self, candidate, result: Result, **extra) -> dict:
        """Record ``result`` for ``candidate`` (atomically) and return the record."""
        record = dict(id=candidate.id, arch=candidate.arch, recipe=self.recipe,
                      status='failed' if result.failed else 'ok', score=result.score,
                      metrics=result.metrics, costs=result.costs, **extra)
        if result.failed:
            record['error'] = result.failure_reason
        atomic_write_json(self.path(candidate.id), record)
        return record
