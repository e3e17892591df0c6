"""Search scalars through mmengine's Visualizer.

A config's ``visualizer = dict(vis_backends=[...])`` names where a search's
numbers go: ``TensorboardVisBackend``, ``WandbVisBackend``,
``MLflowVisBackend``, ``LocalVisBackend`` (a JSON-lines file), or any backend
registered in mmengine's ``VISBACKENDS``. The search loop logs one set of
scalars per round, the differentiable trainer one per epoch; strategies hand
theirs over through :meth:`Strategy.log_scalars`, so none of them knows the
Visualizer. Files go to ``WORK_DIR/vis_data/``.

Only rank 0 logs. A config without a visualizer (or without backends) logs
nothing and writes no file. Logging reads numbers and draws no random number,
so a resumed search stays exact.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from mmengine.visualization import TensorboardVisBackend, Visualizer

from nas_tasks import dist
from nas_tasks.errors import NasError, first_line

VIS_DATA_DIR = 'vis_data'  # mmengine's Visualizer puts its backends' files here


class SearchLog:
    """The search's scalar sink: an mmengine Visualizer, or nothing.

    ``add(scalars, step)`` drops values that are None or not finite (a round
    in which every candidate failed has no best score), so every backend gets
    plain numbers.
    """

    def __init__(self, visualizer: Visualizer | None = None, config=None):
        self.visualizer = visualizer
        self._config = config

    @classmethod
    def from_config(cls, cfg: Mapping, work_dir: str | Path) -> 'SearchLog':
        """The backends of ``cfg.visualizer`` on rank 0, writing under ``work_dir/vis_data``.

        The Visualizer's own type is left out: a config's visualizer is the
        image visualizer of the task's Runners (mmdet's ``DetLocalVisualizer``,
        ...), while a search logs scalars only, which the base class does.
        Nothing is written until the search opens the log.
        """
        spec = cfg.get('visualizer')
        if not isinstance(spec, Mapping) or not dist.is_main_process():
            return cls()
        backends = copy.deepcopy(list(spec.get('vis_backends') or []))
        if not backends:
            return cls()
        save_dir = spec.get('save_dir') or str(work_dir)
        try:
            # Not through the registry: Visualizer.get_instance would make this the
            # "current" visualizer, which the task's Runners and hooks look up.
            visualizer = Visualizer(name=f'nas_tasks.search:{Path(save_dir).resolve()}',
                                    vis_backends=backends, save_dir=save_dir)
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise NasError(f'cannot build the visualizer backends {_types(spec)}: '
                           f'{first_line(error)}; registered backends are in mmengine\'s '
                           'VISBACKENDS (TensorboardVisBackend, WandbVisBackend, '
                           'MLflowVisBackend, LocalVisBackend, ...)') from error
        return cls(visualizer, cfg)

    @property
    def enabled(self) -> bool:
        return self.visualizer is not None

    def open(self) -> None:
        """Start the backends (TensorBoard's writer, a W&B or MLflow run) and record
        the config; call once the work directory is accepted. A backend that
        cannot start stops the search here, not after its first round."""
        if self.visualizer is None:
            return
        try:
            if self._config is not None and hasattr(self._config, 'pretty_text'):
                self.visualizer.add_config(self._config)
            for backend in self.visualizer._vis_backends.values():
                backend.experiment  # noqa: B018  (forces the backend's lazy start)
        except Exception as error:  # noqa: BLE001  (each backend fails in its own way)
            raise NasError(f'a visualizer backend could not start: {first_line(error)}') from error

    def add(self, scalars: Mapping[str, float | None], step: int) -> None:
        """Log the finite ``scalars`` at ``step`` to every backend."""
        if self.visualizer is None:
            return
        numbers = {name: float(value) for name, value in scalars.items()
                   if value is not None and math.isfinite(value)}
        if not numbers:
            return
        self.visualizer.add_scalars(numbers, step=step)
        for backend in self.visualizer._vis_backends.values():
            if isinstance(backend, TensorboardVisBackend):
                # TensorBoard's writer holds events for up to two minutes; a search
                # killed meanwhile would lose rounds its checkpoint already holds,
                # which a resume does not log again.
                backend.experiment.flush()

    def close(self) -> None:
        if self.visualizer is not None:
            self.visualizer.close()


def round_scalars(scores: Sequence[float]) -> dict[str, float]:
    """Per round: best, mean and worst of the finite scores, and how many candidates failed."""
    finite = [score for score in scores if math.isfinite(score)]
    scalars = {'search/candidates': float(len(scores)),
               'search/failed': float(len(scores) - len(finite))}
    if finite:
        scalars.update({'search/best': max(finite), 'search/mean': sum(finite) / len(finite),
                        'search/worst': min(finite)})
    return scalars


def arch_entropies(arch_weights: Mapping[str, list]) -> dict[str, float]:
    """Per group of a differentiable search's normalised architecture weights
    (nested lists, options on the last axis): the mean entropy, in nats, of its
    rows. Rows of zeros (Auto-DeepLab's beta has no transition there) are left out."""
    entropies = {}
    for group, weights in arch_weights.items():
        rows = np.asarray(weights, dtype=float)
        rows = rows.reshape(-1, rows.shape[-1])
        rows = rows[rows.sum(axis=1) > 0]
        if not len(rows):
            continue
        logs = np.log(np.where(rows > 0, rows, 1.0))  # 0 * log 0 counts as 0
        entropies[group] = float(-(rows * logs).sum(axis=1).mean())
    return entropies


def epoch_scalars(record: Mapping) -> dict[str, float | None]:
    """One epoch of a differentiable search (a ``DifferentiableTrainer.history``
    record): its losses, architecture cost, learning rate, the entropy of each
    group of architecture weights, and its metrics."""
    scalars = {'loss/weight': record.get('weight_loss'), 'loss/arch': record.get('arch_loss'),
               'arch/cost': record.get('arch_cost'), 'lr': record.get('lr')}
    scalars.update({f'arch/entropy_{group}': value
                    for group, value in arch_entropies(record.get('arch_weights') or {}).items()})
    scalars.update({f'metric/{name}': value for name, value in (record.get('metrics') or {}).items()})
    return scalars


def _types(spec: Mapping) -> str:
    return str([backend.get('type') if isinstance(backend, Mapping) else backend
                for backend in spec.get('vis_backends') or []])


