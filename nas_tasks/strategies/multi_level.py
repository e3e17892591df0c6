"""Multi-level architecture search (MLAS, AutoGAN, Gong et al. 2019), generic
over any :class:`~nas_tasks.space.StagedSpace`: the space is searched one
stage at a time, each stage growing from the best prefixes of the one before."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Iterator

from ..errors import NasError
from ..history_text import HistoryText, decode_history
from ..plots import plot_staged_controller_rewards
from ..registry import STRATEGIES
from ..result import Result
from ..space import Arch, StagedSpace
from ..validation import check_int
from .base import SearchPosition, Strategy, rank_key
from .reinforce import ReinforceController

# Settings of the stage controllers that the search sets itself.
_OWN_CONTROLLER_SETTINGS = ('num_steps', 'seed', 'constraint', 'max_sample_tries')


@STRATEGIES.register_module()
class MultiLevelSearch(Strategy):
    """MLAS as AutoGAN's official code runs it, over the stages of ``space``.

    Stage s is searched by a fresh :class:`ReinforceController` (new
    parameters, new optimiser; its seed drawn from this strategy's generator)
    for ``stage_steps[s]`` controller steps, one ask/tell batch each. It
    decides only stage s's decisions: every sample starts with one of the
    previous stage's kept prefixes, picked uniformly *with replacement* (as
    the official ``np.random.choice``, whose ``replace=False`` is a TODO),
    and its log-probability and entropy cover the new decisions only.

    At the end of a stage the search *grows*: one round proposes up to
    ``num_candidates`` distinct samples of the stage's controller (fewer when
    ``max_sample_tries`` draws of a converged controller give fewer; they may
    repeat the stage's earlier proposals, whose scores the loop has cached).
    Told their scores, it keeps the ``top_k`` best that did not fail as the
    prefixes of the next stage (all that succeeded, if fewer did; none
    succeeding is an error). After the last stage's candidates, which are
    whole architectures, the search is done; :attr:`best_candidate` is the
    best of them, and :meth:`is_final` keeps prefixes out of the loop's result.

    How a stage's controller conditions on a prefix: the official controller
    starts the new stage's LSTM from the *old* controller's hidden state after
    the prefix. Here the new controller reads the prefix itself, teacher-forced
    through its own LSTM (a controller over the decisions of stages 0..s whose
    first ones are fixed, see :class:`~nas_tasks.space.PrefixedSpace`). It
    learns how to read the prefixes instead of inheriting a frozen encoding,
    and its state stays self-contained: no hidden states of a discarded
    network to store and restore on resume.

    Args:
        space: a :class:`~nas_tasks.space.StagedSpace`.
        stage_steps: controller steps per stage, one int per stage. A stage
            ends earlier when its controller is done (e.g. without
            ``allow_repeats``, once its stage is exhausted).
        num_candidates: samples scored at the end of a stage (AutoGAN: 10).
        top_k: best candidates kept as the next stage's prefixes (AutoGAN: 5).
        controller: :class:`ReinforceController` settings of every stage's
            controller (``hidden_size``, ``lr``, ``baseline_decay``,
            ``entropy_weight``, ``batch_size``, ...), all but
            ``num_steps``, ``seed``, ``constraint`` and ``max_sample_tries``,
            which this search sets.
        seed, max_sample_tries: as for every strategy.
        constraint: as for every strategy; note that it judges prefixes too
            (``space.is_complete`` tells them apart).
    """

    uses_candidates_per_round = False
    round_size_setting = ('one controller batch (strategy.controller.batch_size candidates), '
                          'or num_candidates at the end of a stage')

    def __init__(self, space: StagedSpace, stage_steps: list[int] | tuple[int, ...] = (15, 20, 30),
                 num_candidates: int = 10, top_k: int = 5, controller: dict | None = None,
                 seed: int = 0, constraint: Callable[[Arch], bool] | None = None,
                 max_sample_tries: int = 1000):
        super().__init__(space, seed, constraint, max_sample_tries)
        if not isinstance(space, StagedSpace):
            raise NasError(f'MultiLevelSearch needs a StagedSpace, got {type(space).__name__}; '
                           'group the decisions of the search space into stages')
        if not isinstance(stage_steps, (list, tuple)) or len(stage_steps) != space.num_stages:
            raise NasError(f"stage_steps needs one int per stage of space '{space.name}' "
                           f'({space.num_stages}), got {stage_steps!r}')
        for steps in stage_steps:
            check_int('every entry of stage_steps', steps, minimum=1)
        check_int('num_candidates', num_candidates, minimum=1)
        check_int('top_k', top_k, minimum=1)
        if top_k > num_candidates:
            raise NasError(f'top_k ({top_k}) cannot exceed num_candidates ({num_candidates})')
        settings = dict(controller or {})
        owned = [name for name in _OWN_CONTROLLER_SETTINGS if name in settings]
        if owned:
            raise NasError(f"strategy.controller must not set {', '.join(owned)}: MultiLevelSearch "
                           'sets them (num_steps from stage_steps, seed from its own seed)')
        self.stage_steps = list(stage_steps)
        self.num_candidates = num_candidates
        self.top_k = top_k
        self.controller_settings = settings
        # Per finished stage, the kept (prefix, score) pairs, best first.
        self.kept: list[list[tuple[Arch, float]]] = []
        self.finished_histories: list[list[tuple]] = []  # the finished stages' controller histories
        self._finished_texts: list[HistoryText] = []  # each as the checkpoint stores it
        self._candidates: list[str] = []  # the grow round's proposals until told
        self._scalars: dict[str, float] = {}  # of the latest tell, for log_scalars (not state)
        self.controller = self._new_controller(self.rng.randrange(2 ** 31))

    # -- stages -------------------------------------------------------------------

    @property
    def stage(self) -> int:
        """The stage being searched (the last one once done)."""
        return min(len(self.kept), self.space.num_stages - 1)

    @property
    def done(self) -> bool:
        return len(self.kept) == self.space.num_stages

    @property
    def total_rounds(self) -> int:
        """Rounds of the search loop: the controller steps, plus one grow round per stage."""
        return sum(self.stage_steps) + self.space.num_stages

    @property
    def best_candidate(self) -> Arch | None:
        """The best whole architecture among the last stage's candidates, once done."""
        return dict(self.kept[-1][0][0]) if self.done else None

    def prefixes(self, stage: int) -> list[Arch]:
        """The prefixes that ``stage`` grows from (``[{}]`` for stage 0)."""
        return [dict(prefix) for prefix, _ in self.kept[stage - 1]] if stage else [{}]

    def _new_controller(self, seed: int) -> ReinforceController:
        stage = self.stage
        return ReinforceController(self.space.conditioned(stage, self.prefixes(stage)),
                                   num_steps=self.stage_steps[stage], seed=seed,
                                   constraint=self.constraint,
                                   max_sample_tries=self.max_sample_tries,
                                   **self.controller_settings)

    def final_candidates(self) -> list[tuple[Arch, float]] | None:
        """The last stage's top-k, best first, once done: they were scored together
        at the end, while earlier whole archs were scored on earlier shared weights."""
        return [(dict(arch), score) for arch, score in self.kept[-1]] if self.done else None

    def is_final(self, arch: Arch) -> bool:
        """Only whole architectures: the earlier stages' prefixes are no result."""
        return self.space.is_complete(arch)

    def position(self, round_index: int) -> SearchPosition:
        """The stage and its controller's step; a grow round is no step."""
        step = None if self.controller.done else self.controller.step
        return SearchPosition(round_index, self.stage, step)

    def sample_for_training(self) -> Arch:
        """A kept prefix and the current controller's decisions after it, not proposed."""
        return self.controller.sample_for_training()

    # -- ask and tell -----------------------------------------------------------------

    def ask(self, n: int | None = None) -> list[Arch]:
        if self.done:
            return []
        if self.controller.done:
            archs = self._grow_candidates()
            self._candidates = [self.space.canonical(arch) for arch in archs]
        else:
            archs = self.controller.ask()
        self._mark_proposed(archs)
        return archs

    def tell(self, archs: list[Arch], results: list[Result]) -> None:
        super().tell(archs, results)
        if not self._candidates:
            self.controller.tell(archs, results)
            self._scalars = {**self.controller.log_scalars(), 'controller/stage': float(self.stage)}
            return
        self._scalars = {}  # a grow round is no controller step
        if sorted(self.space.canonical(arch) for arch in archs) != sorted(self._candidates):
            raise ValueError(f'tell() at the end of stage {self.stage} must report the '
                             f'{len(self._candidates)} candidates asked for, got {len(archs)} archs')
        self._keep_best(archs, [float(result.score) for result in results])

    def log_scalars(self) -> dict[str, float]:
        """After a controller step, the stage controller's scalars and the stage; none after a grow round."""
        return dict(self._scalars)

    def _grow_candidates(self) -> list[Arch]:
        """Up to ``num_candidates`` distinct samples of the stage's controller within the constraint."""
        candidates: dict[str, Arch] = {}
        for arch in self._policy_samples():
            key = self.space.canonical(arch)
            if key not in candidates and self._satisfies(key, arch):
                candidates[key] = arch
                if len(candidates) == self.num_candidates:
                    break
        if not candidates:
            raise NasError(f'the controller of stage {self.stage} gave no architecture within the '
                           f'constraint in {self.max_sample_tries} draws; loosen the limits or '
                           'raise max_sample_tries')
        return list(candidates.values())

    def _policy_samples(self) -> Iterator[Arch]:
        """At most ``max_sample_tries`` samples of the controller, drawn a batch at a time."""
        batch_size = self.controller.batch_size
        for start in range(0, self.max_sample_tries, batch_size):
            yield from self.controller.sample_archs(min(batch_size, self.max_sample_tries - start))

    def _keep_best(self, archs: list[Arch], scores: list[float]) -> None:
        """Keep the top-k candidates that did not fail; then start the next stage, or finish."""
        ranked = sorted((rank_key(score, order), arch, score)
                        for order, (arch, score) in enumerate(zip(archs, scores)) if math.isfinite(score))
        if not ranked:
            raise NasError(f'all {len(archs)} candidates at the end of stage {self.stage} failed, '
                           'so no prefix is left to grow the search from; see their errors in '
                           'candidates.jsonl')
        self.kept.append([(dict(arch), score) for _, arch, score in ranked[:self.top_k]])
        self.finished_histories.append(list(self.controller.history))
        self._candidates = []
        if not self.done:
            self.controller = self._new_controller(self.rng.randrange(2 ** 31))

    def _mark_proposed(self, archs: list[Arch]) -> None:
        for arch in archs:
            key = self.space.canonical(arch)
            if key not in self._seen:
                self._proposed.append(key)
                self._seen.add(key)

    # -- plots and state --------------------------------------------------------------------

    def save_plots(self, plots_dir: Path, score_name: str,
                   marks: list[tuple[str, SearchPosition]] = ()) -> None:
        """Reward per controller step across the stages, boundaries and ``marks``
        drawn; called by the search loop."""
        histories = self.finished_histories + ([] if self.done else [list(self.controller.history)])
        if any(histories):
            plot_staged_controller_rewards(histories, Path(plots_dir) / 'controller_rewards.png',
                                           score_name, marks)

    def state_dict(self) -> dict:
        state = super().state_dict()
        state.update(kept=[[[dict(arch), score] for arch, score in stage] for stage in self.kept],
                     finished_histories=self._encoded_finished_histories(),
                     candidates=list(self._candidates),
                     controller=self.controller.state_dict())
        return state

    def _encoded_finished_histories(self) -> list[str]:
        """The finished stages' controller histories as JSON lines, each encoded once."""
        missing = len(self.finished_histories) - len(self._finished_texts)
        self._finished_texts += [HistoryText() for _ in range(missing)]
        return [text.encode(history) for text, history in zip(self._finished_texts, self.finished_histories)]

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.kept = [[(dict(arch), float(score)) for arch, score in stage] for stage in state['kept']]
        if len(self.kept) > self.space.num_stages:
            raise NasError(f'the saved search finished {len(self.kept)} stages, but the space '
                           f"'{self.space.name}' has {self.space.num_stages}")
        self.finished_histories = [[tuple(entry) for entry in decode_history(history)]
                                   for history in state['finished_histories']]
        self._candidates = list(state['candidates'])
        # The seed is irrelevant: the saved controller's weights and generator replace it.
        self.controller = self._new_controller(seed=0)
        self.controller.load_state_dict(state['controller'])
