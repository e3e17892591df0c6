"""Regularized (aging) evolution, Real et al. 2019, "Regularized Evolution for
Image Classifier Architecture Search" (AmoebaNet)."""
from __future__ import annotations

import math
from typing import Callable

from ..errors import NasError
from ..history_text import HistoryText, decode_history
from ..registry import STRATEGIES
from ..result import Result
from ..space import Arch, CategoricalSpace
from ..validation import check_int, check_prob
from .base import Strategy, rank_key


@STRATEGIES.register_module()
class AgingEvolution(Strategy):
    """Tournament selection on a sliding population, oldest member dies first.

    The first ``population_size`` proposals are random. After that each
    proposal draws ``sample_size`` members of the current population uniformly
    (with replacement, as in the paper), takes the best (equal scores: the
    earlier told) as parent and mutates it: with ``mutation_prob=None`` exactly
    one decision changes to a different option, as in the paper; with a float,
    each decision is redrawn with that probability. A child that cannot be made
    new and within the constraint is replaced by a random candidate. Told
    candidates join the population, which keeps only the newest
    ``population_size``. Done after ``num_candidates`` proposals.

    A failed candidate (non-finite score) never joins the population, so it is
    never a tournament's parent; it still counts as proposed.
    """

    def __init__(self, space: CategoricalSpace, population_size: int = 50, sample_size: int = 10,
                 num_candidates: int = 1000, mutation_prob: float | None = None, seed: int = 0,
                 constraint: Callable[[Arch], bool] | None = None, max_sample_tries: int = 1000):
        super().__init__(space, seed, constraint, max_sample_tries)
        check_int('population_size', population_size, minimum=1)
        check_int('sample_size', sample_size, minimum=1)
        check_int('num_candidates', num_candidates, minimum=1)
        if mutation_prob is not None:
            check_prob('mutation_prob', mutation_prob)
        if sample_size > population_size:
            raise NasError(f'sample_size ({sample_size}) must not exceed population_size ({population_size})')
        self.population_size = population_size
        self.sample_size = sample_size
        self.num_candidates = num_candidates
        self.mutation_prob = mutation_prob
        self._history: list[tuple[Arch, float]] = []  # every told (arch, score), in order
        self._history_text = HistoryText()  # _history as the checkpoint stores it
        self._population: list[int] = []  # indices into _history, oldest first
        self._told: set[str] = set()

    @property
    def done(self) -> bool:
        return self._remaining(self.num_candidates) == 0

    @property
    def history(self) -> list[tuple[Arch, float]]:
        """Every told ``(arch, score)``, in the order told."""
        return [(dict(arch), score) for arch, score in self._history]

    @property
    def population(self) -> list[tuple[Arch, float]]:
        """The current population as ``(arch, score)``, oldest first."""
        return [(dict(self._history[i][0]), self._history[i][1]) for i in self._population]

    def ask(self, n: int) -> list[Arch]:
        proposals = []
        for _ in range(min(n, self._remaining(self.num_candidates))):
            # Children need told parents; until then (e.g. many asks in flight
            # before the first tell) random candidates keep workers busy.
            if self.num_proposed < self.population_size or not self._population:
                proposals.append(self.sample_valid())
            else:
                proposals.append(self.new_child(self._mutate_tournament_winner))
        return proposals

    def _mutate_tournament_winner(self) -> Arch:
        contenders = [self.rng.choice(self._population) for _ in range(self.sample_size)]
        parent = self._history[min(contenders, key=lambda i: rank_key(self._history[i][1], i))][0]
        if self.mutation_prob is None:
            return self.space.mutate_one(parent, self.rng)
        return self.space.mutate(parent, self.mutation_prob, self.rng)

    def _tell_one(self, key: str, arch: Arch, score: float) -> None:
        if key in self._told:
            raise ValueError(f'tell() got an architecture that was told already: {key}')
        self._told.add(key)
        self._history.append((arch, score))
        if math.isfinite(score):
            self._join_population(len(self._history) - 1)

    def _join_population(self, index: int) -> None:
        self._population.append(index)
        del self._population[:-self.population_size]

    def revise(self, arch: Arch, result: Result) -> None:
        """A retried candidate that succeeded joins the population as its newest member."""
        if not result.failed:
            self._history.append((dict(arch), float(result.score)))
            self._join_population(len(self._history) - 1)

    def state_dict(self) -> dict:
        state = super().state_dict()
        state.update(history=self._history_text.encode(self._history),
                     population=list(self._population))
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self._history = [(dict(arch), score) for arch, score in decode_history(state['history'])]
        self._population = list(state['population'])
        self._told = {self.space.canonical(arch) for arch, _ in self._history}
