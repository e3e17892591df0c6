"""Random search: uniform, unique, constraint-satisfying samples."""
from __future__ import annotations

from typing import Callable

from ..registry import STRATEGIES
from ..space import Arch, CategoricalSpace
from ..validation import check_int
from .base import Strategy


@STRATEGIES.register_module()
class RandomSearch(Strategy):
    """Proposes ``num_candidates`` distinct random architectures (fewer if the
    space is smaller), then is done. Results do not steer it."""

    def __init__(self, space: CategoricalSpace, num_candidates: int, seed: int = 0,
                 constraint: Callable[[Arch], bool] | None = None, max_sample_tries: int = 1000):
        super().__init__(space, seed, constraint, max_sample_tries)
        check_int('num_candidates', num_candidates, minimum=1)
        self.num_candidates = num_candidates

    def ask(self, n: int) -> list[Arch]:
        return [self.sample_valid() for _ in range(min(n, self._remaining(self.num_candidates)))]

    @property
    def done(self) -> bool:
        return self._remaining(self.num_candidates) == 0
