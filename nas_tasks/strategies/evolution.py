"""Generational evolution with a top-k memory, as in SPOS and DetNAS."""
from __future__ import annotations

import math
from typing import Callable

from ..errors import NasError
from ..registry import STRATEGIES
from ..result import Result
from ..space import Arch, CategoricalSpace
from ..validation import check_int, check_prob
from .base import Strategy, rank_key


@STRATEGIES.register_module()
class Evolution(Strategy):
    """Evolution in whole generations.

    Generation 0 is ``population_size`` random candidates. Every later
    generation holds ``num_mutation`` mutants (each decision of a random top-k
    parent redrawn with probability ``mutation_prob``), ``num_crossover``
    crossovers of two distinct random top-k parents, and random candidates up
    to ``population_size``. The top-k are the best candidates told so far over
    all generations; equal scores rank by evaluation order, earlier first. A
    child that cannot be made new and within the constraint is replaced by a
    random candidate. Done after ``max_generations`` generations are told.

    A failed candidate (non-finite score) never enters the top-k, so it is
    never a parent; a generation whose candidates all failed adds no parent.

    ``ask(n)`` ignores ``n``: it returns the members of the current generation
    not told yet, the same list on every call, and builds the next generation
    only once the whole current one is told.
    """

    uses_candidates_per_round = False
    round_size_setting = 'one generation (strategy.population_size candidates)'

    def __init__(self, space: CategoricalSpace, population_size: int = 50, max_generations: int = 20,
                 top_k: int = 10, num_mutation: int = 20, mutation_prob: float = 0.1,
                 num_crossover: int = 20, seed: int = 0,
                 constraint: Callable[[Arch], bool] | None = None, max_sample_tries: int = 1000):
        super().__init__(space, seed, constraint, max_sample_tries)
        check_int('population_size', population_size, minimum=1)
        check_int('max_generations', max_generations, minimum=1)
        check_int('top_k', top_k, minimum=1)
        check_int('num_mutation', num_mutation, minimum=0)
        check_int('num_crossover', num_crossover, minimum=0)
        check_prob('mutation_prob', mutation_prob)
        if num_mutation + num_crossover > population_size:
            raise NasError(f'num_mutation + num_crossover ({num_mutation} + {num_crossover}) must not '
                           f'exceed population_size ({population_size})')
        self.population_size = population_size
        self.max_generations = max_generations
        self.top_k = top_k
        self.num_mutation = num_mutation
        self.mutation_prob = mutation_prob
        self.num_crossover = num_crossover
        self.generation = 0  # generations fully told
        self._population: list[Arch] = []  # the current generation
        self._untold: set[str] = set()
        self._num_told = 0
        self._top: list[tuple[float, int, Arch]] = []  # (score, order told, arch), best first

    @property
    def done(self) -> bool:
        return self.generation >= self.max_generations

    @property
    def total_rounds(self) -> int:
        """Rounds of the search loop this strategy needs: one per generation."""
        return self.max_generations

    @property
    def top(self) -> list[tuple[Arch, float]]:
        """The top-k memory as ``(arch, score)``, best first."""
        return [(dict(arch), score) for score, _, arch in self._top]

    def ask(self, n: int | None = None) -> list[Arch]:
        if self.done:
            return []
        if not self._population:
            self._population = self._next_generation()
            self._untold = {self.space.canonical(arch) for arch in self._population}
        return [dict(arch) for arch in self._population if self.space.canonical(arch) in self._untold]

    def _next_generation(self) -> list[Arch]:
        children = []
        if self._top:
            parents = [arch for _, _, arch in self._top]
            children += [self.new_child(lambda: self.space.mutate(
                self.rng.choice(parents), self.mutation_prob, self.rng)) for _ in range(self.num_mutation)]
            children += [self.new_child(lambda: self.space.crossover(
                *self._two_parents(parents), self.rng)) for _ in range(self.num_crossover)]
        children += [self.sample_valid() for _ in range(self.population_size - len(children))]
        return children

    def _two_parents(self, parents: list[Arch]) -> list[Arch]:
        return self.rng.sample(parents, 2) if len(parents) > 1 else parents * 2

    def _tell_one(self, key: str, arch: Arch, score: float) -> None:
        if key not in self._untold:
            raise ValueError(f'tell() got an architecture that is not in the current generation '
                             f'or was told already: {key}')
        self._untold.remove(key)
        if math.isfinite(score):
            self._add_to_top(score, arch)
        self._num_told += 1
        if not self._untold:
            self._population = []
            self.generation += 1

    def _add_to_top(self, score: float, arch: Arch) -> None:
        self._top.append((score, self._num_told, arch))
        self._top.sort(key=lambda entry: rank_key(entry[0], entry[1]))
        del self._top[self.top_k:]

    def revise(self, arch: Arch, result: Result) -> None:
        """A retried candidate that succeeded competes for the top-k (as told last)."""
        if not result.failed:
            self._add_to_top(float(result.score), dict(arch))
            self._num_told += 1

    def state_dict(self) -> dict:
        state = super().state_dict()
        state.update(generation=self.generation,
                     population=[dict(arch) for arch in self._population],
                     untold=sorted(self._untold),
                     num_told=self._num_told,
                     top=[(score, order, dict(arch)) for score, order, arch in self._top])
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.generation = state['generation']
        self._population = [dict(arch) for arch in state['population']]
        self._untold = set(state['untold'])
        self._num_told = state['num_told']
        self._top = [(score, order, dict(arch)) for score, order, arch in state['top']]
