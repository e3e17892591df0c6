"""The interface of a search strategy and the sampling logic all strategies share.

A strategy proposes architectures with :meth:`Strategy.ask`, learns their
scores through :meth:`Strategy.tell`, and never proposes the same architecture
twice. Its whole state, random generator included, round-trips through
:meth:`Strategy.state_dict` so that a resumed search proposes exactly what an
uninterrupted one would have.
"""
from __future__ import annotations

import random
from typing import Callable, NamedTuple

from ..constraints import ResourceConstraint
from ..errors import NasError
from ..result import Result, ranking_score
from ..space import Arch, CategoricalSpace
from ..validation import check_int


def rank_key(score: float, order: int) -> tuple[float, int]:
    """Sort key putting the best score first, ties broken by evaluation order.

    A non-finite score (a failed evaluation) ranks last instead of breaking the sort.
    """
    return (-ranking_score(score), order)


class SearchPosition(NamedTuple):
    """Where a round of the search loop stands in the strategy's schedule.

    Estimators that train while the search runs (AutoGAN) time their training
    by it rather than by the loop round, because a staged search spends rounds
    that are no policy step (growing to the next stage).
    """
    round: int  # the loop's round, 0-based
    stage: int  # the stage being searched; 0 for a search without stages
    step: int | None  # the policy step within the stage; None in a round that is none


class Strategy:
    """Base class of the search strategies.

    Args:
        space: the search space to draw architectures from.
        seed: seed of the strategy's own random generator, the only source of
            randomness it uses.
        constraint: arch -> bool; proposals all satisfy it. ``None`` accepts all.
        max_sample_tries: how many draws to make before giving up on finding an
            architecture that is new and satisfies the constraint.
    """

    # Whether ask(n) honours n (``search.candidates_per_round``); strategies that
    # propose a fixed batch say which setting sizes it instead.
    uses_candidates_per_round = True
    round_size_setting = 'search.candidates_per_round candidates'

    def __init__(self, space: CategoricalSpace, seed: int = 0,
                 constraint: Callable[[Arch], bool] | None = None, max_sample_tries: int = 1000):
        check_int('max_sample_tries', max_sample_tries, minimum=1)
        self.space = space
        self.constraint = constraint
        self.max_sample_tries = max_sample_tries
        self.rng = random.Random(seed)
        self._proposed: list[str] = []  # canonical strings, in proposal order
        self._seen: set[str] = set()
        # Archs known to fail the constraint, so that a costly cost function
        # runs once per arch. A pure cache: it is not part of the state.
        self._rejected: set[str] = set()

    # -- the interface --------------------------------------------------------

    def ask(self, n: int) -> list[Arch]:
        """Up to ``n`` new architectures to evaluate; ``[]`` once :attr:`done`."""
        raise NotImplementedError

    def tell(self, archs: list[Arch], results: list[Result]) -> None:
        """Report the results of evaluating ``archs``, which this strategy proposed."""
        if len(archs) != len(results):
            raise ValueError(f'tell() got {len(archs)} architectures but {len(results)} results')
        for arch, result in zip(archs, results):
            key = self.space.canonical(arch)
            if key not in self._seen:
                raise ValueError(f'tell() got an architecture this strategy never proposed: {key}')
            self._tell_one(key, dict(arch), float(result.score))

    def _tell_one(self, key: str, arch: Arch, score: float) -> None:
        """Record one result; ``key`` is ``space.canonical(arch)``. A failed
        evaluation comes as a non-finite score (NaN)."""

    def revise(self, arch: Arch, result: Result) -> None:
        """A candidate told as failed was evaluated again (``--retry-failed``) and
        succeeded. Strategies that keep scored candidates (evolution's parents)
        take it in; by default it only counts for the search's best record."""

    @property
    def done(self) -> bool:
        """True when the strategy has nothing more to propose."""
        raise NotImplementedError

    def save_plots(self, plots_dir, score_name: str,
                   marks: list[tuple[str, SearchPosition]] = ()) -> None:
        """Write the strategy's own plots (none by default); ``marks`` are events
        of the search (e.g. an estimator's resets) to draw where they happened."""

    def log_scalars(self) -> dict[str, float]:
        """Numbers about the latest :meth:`tell` for the search's logging backends
        (a controller's reward, baseline and entropy), by name; none by default.
        The loop logs them at the round's step."""
        return {}

    def sample_for_training(self) -> Arch:
        """An architecture to train shared weights on (ENAS/AutoGAN: one per
        minibatch), drawn from the strategy's current distribution without
        proposing it, so it never counts as a candidate. Uniform by default;
        a controller samples from its policy."""
        return self.space.sample(self.rng)

    def position(self, round_index: int) -> SearchPosition:
        """Where loop round ``round_index`` stands: by default every round is
        one step of a single stage."""
        return SearchPosition(round_index, 0, round_index)

    def final_candidates(self) -> list[tuple[Arch, float]] | None:
        """The strategy's own ranking of its result, best first, as (arch, score)
        pairs, once done: a multi-level search's top-k of the last stage, scored
        together at the end. None (the default) lets the loop rank every
        candidate it evaluated."""
        return None

    def is_final(self, arch: Arch) -> bool:
        """Whether ``arch`` is a whole candidate that may be the search's result.
        A staged search also scores prefixes (its earlier stages), which are not."""
        return True

    @property
    def num_proposed(self) -> int:
        return len(self._proposed)

    def state_dict(self) -> dict:
        """The full state as plain Python types (safe for ``torch.load(weights_only=True)``)."""
        return {'strategy': type(self).__name__,
                'space': [self.space.name, self.space.version],
                'rng': self.rng.getstate(),
                'proposed': list(self._proposed)}

    def load_state_dict(self, state: dict) -> None:
        """Restore a state from :meth:`state_dict` of the same strategy and space."""
        mine = (type(self).__name__, self.space.name, self.space.version)
        theirs = (state.get('strategy'), *state.get('space', (None, None)))
        if mine != theirs:
            raise NasError(f"the saved search state is for strategy {theirs[0]} on space '{theirs[1]}' "
                           f"v{theirs[2]}, but this search uses {mine[0]} on space '{mine[1]}' v{mine[2]}")
        version, internal, gauss_next = state['rng']
        # Accept lists too, as a state that went through JSON has no tuples.
        self.rng.setstate((version, tuple(internal), gauss_next))
        self._proposed = list(state['proposed'])
        self._seen = set(self._proposed)

    # -- shared sampling: new architectures within the constraint -------------

    def sample_valid(self) -> Arch:
        """A uniformly drawn architecture that is new and satisfies the constraint.

        Raises :class:`NasError` when none is found in ``max_sample_tries`` draws.
        """
        arch, duplicates, rejected = self._draw(lambda: self.space.sample(self.rng))
        if arch is not None:
            return arch
        if self._exhausted():
            raise NasError(f"search space '{self.space.name}' is exhausted: all {self.space.size()} "
                           'architectures have been proposed; ask for fewer candidates')
        if rejected:
            limits = f' ({self.constraint})' if isinstance(self.constraint, ResourceConstraint) else ''
            raise NasError(
                f'could not sample an architecture within the constraints after {self.max_sample_tries} '
                f'tries ({rejected} outside the limits, {duplicates} already proposed); loosen the '
                f'limits{limits} or raise max_sample_tries')
        raise NasError(
            f'could not sample an architecture that was not proposed before after {self.max_sample_tries} '
            f'tries ({self.num_proposed} of {self.space.size()} proposed); the search space is nearly '
            'exhausted: ask for fewer candidates or raise max_sample_tries')

    def new_child(self, make: Callable[[], Arch]) -> Arch:
        """A child from ``make`` (a mutation or crossover, drawn afresh on each
        try) that is new and satisfies the constraint, or, when
        ``max_sample_tries`` draws give none, a random one from :meth:`sample_valid`."""
        arch, _, _ = self._draw(make)
        return arch if arch is not None else self.sample_valid()

    def _draw(self, make: Callable[[], Arch]) -> tuple[Arch | None, int, int]:
        """Call ``make`` until it gives an acceptable arch, which is marked as
        proposed. Returns ``(arch or None, #duplicates, #rejected by the constraint)``."""
        duplicates = rejected = 0
        if self._exhausted():
            return None, duplicates, rejected
        for _ in range(self.max_sample_tries):
            arch = make()
            key = self.space.canonical(arch)
            if key in self._seen:
                duplicates += 1
            elif not self._satisfies(key, arch):
                rejected += 1
            else:
                self._proposed.append(key)
                self._seen.add(key)
                return arch, duplicates, rejected
        return None, duplicates, rejected

    def _satisfies(self, key: str, arch: Arch) -> bool:
        """Valid for the space (e.g. NAS-FPN's two inputs of a cell must differ) and within the constraint."""
        if key in self._rejected:
            return False
        if self.space.is_valid(arch) and (self.constraint is None or self.constraint(arch)):
            return True
        self._rejected.add(key)
        return False

    def _exhausted(self) -> bool:
        return self.num_proposed >= self.space.size()

    def _remaining(self, num_candidates: int) -> int:
        """How many more proposals a budget of ``num_candidates`` allows."""
        return max(0, min(num_candidates, self.space.size()) - self.num_proposed)


