"""The estimator interface: how good a candidate architecture is."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from nas_tasks.result import Result

Arch = dict[str, Any]


class Estimator:
    """Scores candidates; the search loop owns everything else.

    ``train_shared`` trains weights shared by all candidates (a one-shot
    supernet) and is a no-op for estimators that train each candidate.
    ``evaluate`` must be deterministic for a given arch and shared weights:
    exact resume and the equality of 1-process and N-process searches rely
    on it.
    """

    def train_shared(self, work_dir: Path, resume: bool) -> None:
        """Train shared weights under ``work_dir``, or load them if already trained."""

    def evaluate(self, archs: list[Arch]) -> list[Result]:
        raise NotImplementedError

    def costs(self, arch: Arch) -> dict[str, float]:
        """Cheap resource costs (flops, params) used by constraints before evaluation."""
        return {}

    def export(self, arch: Arch, work_dir: Path) -> list[Path]:
        """Write artefacts for the found architecture (e.g. its weights); return their paths."""
        return []
