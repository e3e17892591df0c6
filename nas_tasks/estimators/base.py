"""The estimator interface: how good a candidate architecture is."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from nas_tasks.result import Result
from nas_tasks.strategies.base import SearchPosition

Arch = dict[str, Any]


class Estimator:
    """Scores candidates; the search loop owns everything else.

    ``train_shared`` trains weights shared by all candidates once, before the
    first round (a one-shot supernet), and is a no-op for estimators that
    train each candidate. An estimator that keeps training its shared weights
    while the search runs (ENAS, AutoGAN) does so in ``train_during_search``,
    which the loop calls at the start of every round, and sets
    ``scores_stay_valid = False``: its scores then describe the shared
    weights of one moment, so the loop never reuses a score from an earlier
    round. Whatever such an estimator evolves (networks, optimisers, windows,
    RNG states) goes into ``state_dict``, which the loop saves in every round
    checkpoint and gives back to ``load_state_dict`` on ``--resume``.

    ``evaluate`` must be deterministic for a given arch and shared weights:
    exact resume and the equality of 1-process and N-process searches rely
    on it.
    """

    # Whether a score stays valid as the search goes on: True for a fixed
    # supernet or per-candidate proxy training, whose scores the loop caches.
    scores_stay_valid = True
    # Whether ``evaluate`` spreads the work of each candidate over the ranks
    # itself (AutoGAN: the images of one reward), so the loop calls it on
    # every rank with every candidate instead of splitting the candidates.
    evaluates_collectively = False
    # What the ``flops`` of ``costs`` counts: a key of nas_tasks.result.FLOPS_CONVENTIONS,
    # written into every record that holds flops.
    flops_convention: str | None = None

    def train_shared(self, work_dir: Path, resume: bool) -> None:
        """Train shared weights under ``work_dir``, or load them if already trained."""

    def train_during_search(self, position: SearchPosition, sample_arch: Callable[[], Arch]) -> None:
        """Train shared weights at the start of a round, whose place in the
        strategy's schedule is ``position`` (loop round, stage, policy step).

        ``sample_arch()`` draws an architecture from the strategy's current
        distribution (e.g. one per minibatch), the same on every rank. The
        estimator decides how much to train in which rounds (AutoGAN: its
        shared-GAN epochs before every 30th controller step of a stage, not in the
        rounds that grow the search to the next stage).
        """

    def plot_marks(self) -> list[tuple[str, SearchPosition]]:
        """Events of the search to mark on its plots, as (label, where) pairs
        (AutoGAN: its dynamic resets); none by default."""
        return []

    def evaluate(self, archs: list[Arch]) -> list[Result]:
        raise NotImplementedError

    def costs(self, arch: Arch) -> dict[str, float]:
        """Cheap resource costs (flops, params) used by constraints before evaluation."""
        return {}

    def evaluation_cost(self, arch: Arch) -> float | None:
        """A relative guess of how long :meth:`evaluate` takes on ``arch`` (e.g. its
        FLOPs for a proxy training), the same on every rank. Given for every candidate,
        a round's candidates are dealt to the ranks longest first; None (the default):
        round-robin."""
        return None

    def export(self, arch: Arch, work_dir: Path) -> list[Path]:
        """Write artefacts for the found architecture (e.g. its weights); return their paths."""
        return []

    def state_dict(self) -> dict:
        """What evolves during the search, for the round checkpoint; loadable with
        ``torch.load(weights_only=True)``. Called on every rank; rank 0's is saved."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`, after :meth:`train_shared` has run."""
