"""An LSTM controller trained with REINFORCE (or a PPO-style clipped objective),
the RL search of NAS-FPN (Ghiasi et al. 2019) and AutoGAN (Gong et al. 2019),
generic over any :class:`CategoricalSpace`."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..errors import NasError, first_line
from ..history_text import HistoryText, decode_history
from ..plots import plot_controller_rewards
from ..registry import STRATEGIES
from ..result import Result
from ..space import Arch, CategoricalSpace
from ..validation import check_int, check_number, check_prob
from .base import SearchPosition, Strategy

# The controller's first input: a learned vector (ENAS) or zeros (AutoGAN's official controller).
FIRST_INPUTS = ('learned', 'zeros')


class _LSTMController(nn.Module):
    """Emits one decision per step. Each decision has its own softmax head and
    an embedding of its chosen option, which is the next step's input, so later
    decisions condition on earlier ones."""

    def __init__(self, num_options: list[int], hidden_size: int,
                 temperature: float | None, tanh_constant: float | None, learned_start: bool):
        super().__init__()
        self.hidden_size = hidden_size
        # The first step's input: learned (ENAS) or, without it, a zero vector (AutoGAN).
        self.start = nn.Parameter(torch.empty(1, hidden_size)) if learned_start else None
        self.cell = nn.LSTMCell(hidden_size, hidden_size)
        self.heads = nn.ModuleList(nn.Linear(hidden_size, n) for n in num_options)
        self.embeddings = nn.ModuleList(nn.Embedding(n, hidden_size) for n in num_options)
        self.temperature = temperature
        self.tanh_constant = tanh_constant

    def forward(self, batch_size: int, choose: Callable[[int, torch.Tensor], torch.Tensor],
                allowed: Callable[[int, list[torch.Tensor]], torch.Tensor | None] | None = None,
                num_fixed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run all decisions for a batch; ``choose(step, log_probs)`` picks the
        option indices of a step. ``allowed(step, chosen)``, given the indices
        chosen at the earlier steps, may return a boolean ``[B, n]`` mask of
        the options valid at this step: the others get probability zero (a
        log-probability of -inf) and take no part in the entropy. Returns the
        indices ``[B, K]`` and, per architecture, the log-probability and the
        entropy summed over decisions. The first ``num_fixed`` decisions are
        given (``choose`` teacher-forces a prefix): the LSTM reads them, so
        later decisions condition on them, but they are no choice of the
        policy and take no part in the log-probability or the entropy."""
        inputs = (self.start.expand(batch_size, -1) if self.start is not None
                  else torch.zeros(batch_size, self.hidden_size))
        state = None
        chosen, log_prob, entropy = [], 0.0, 0.0
        for step, (head, embedding) in enumerate(zip(self.heads, self.embeddings)):
            state = self.cell(inputs, state)
            logits = head(state[0])
            if self.temperature is not None:
                logits = logits / self.temperature
            if self.tanh_constant is not None:  # ENAS: bounded logits keep exploring
                logits = self.tanh_constant * torch.tanh(logits)
            mask = allowed(step, chosen) if allowed is not None else None
            if mask is not None:
                logits = logits.masked_fill(~mask, -math.inf)
            log_probs = torch.log_softmax(logits, dim=-1)
            index = choose(step, log_probs)
            if step >= num_fixed:
                log_prob = log_prob + log_probs.gather(1, index[:, None]).squeeze(1)
                entropy = entropy + _entropy(log_probs, mask)
            chosen.append(index)
            inputs = embedding(index)
        return torch.stack(chosen, dim=1), log_prob, entropy


def _entropy(log_probs: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Entropy of each row; masked options (probability 0, log-probability
    -inf) contribute 0, and no NaN reaches the gradient through them."""
    log_probs_or_zero = log_probs if mask is None else log_probs.masked_fill(~mask, 0.0)
    return -(log_probs.exp() * log_probs_or_zero).sum(-1)


@STRATEGIES.register_module()
class ReinforceController(Strategy):
    """An LSTM controller that samples the decisions of ``space`` in
    ``space.keys`` order, trained by policy gradient on the told scores.

    Each ``tell()`` is one controller update (a step) on the told batch:
    reward R = score, advantage A = R - b with b a moving-average baseline
    (initialised to the first batch's mean reward, then
    ``b <- baseline_decay * b + (1 - baseline_decay) * mean(R)`` after computing
    A), loss ``-mean(A * log p(arch)) - entropy_weight * mean(entropy)``
    (entropy summed over decisions), Adam, gradient clipping by norm. With
    ``ppo_clip`` set, the policy term is PPO's clipped surrogate
    ``min(ratio * A, clip(ratio, 1 - ppo_clip, 1 + ppo_clip) * A)``, with
    ``ratio = p_new / p_old`` and p_old recorded when the arch was proposed,
    optimised for ``ppo_epochs`` passes. Told archs with a non-finite score (a
    failed evaluation) are left out of the update. Done after ``num_steps``
    updates, or when ``allow_repeats=False`` and the space is exhausted.

    The initialisation is ENAS's by default: a learned first input and every
    parameter drawn from U(-``init_range``, ``init_range``) (0.1). AutoGAN's
    official controller starts from a zero first input (``first_input='zeros'``)
    with PyTorch's default initialisations (``init_range=None``: the LSTM and
    the heads uniform in 1/sqrt(hidden_size), the embeddings N(0, 1); a
    learned first input then starts N(0, 1) too, like an embedding row).

    AutoGAN's update differs in three ways, each an option:
    ``entropy_in_reward=True`` adds ``entropy_weight * entropy`` to each
    arch's reward (then baselined like the score) instead of a bonus in the
    loss; ``detach_entropy=False`` keeps that entropy's gradient in the
    policy loss, as the official code does (it then *lowers* the entropy,
    since the term is weighted by ``-log p > 0``); ``baseline_reset_steps=N``
    forgets the baseline every N updates (the official code starts each
    search iteration of 30 steps without one, so that step's first update
    has advantage 0). ``betas`` are Adam's (AutoGAN: (0, 0.9)).

    ``ask(n)`` ignores ``n``: each call samples a new batch of ``batch_size``
    architectures (fewer once the space runs out), all satisfying the
    constraint. With ``allow_repeats=False`` they are also new: a sample
    proposed before is redrawn, which biases the gradient slightly, as the
    samples then come from the controller's distribution restricted to new
    archs; a proposal the controller fails to make new in ``max_sample_tries``
    draws is a uniform random one. With ``allow_repeats=True`` the controller
    may propose an arch again (NAS-FPN's does); the search loop caches
    results, so a repeat costs no evaluation.

    All randomness comes from a ``torch.Generator`` seeded with ``seed`` (the
    controller's initial weights included), plus the base class's ``rng`` for
    the uniform fallback.

    A space may constrain a decision by the earlier ones with
    ``allowed_options(key, partial_arch) -> list[bool] | None`` (one flag per
    option of ``key``, given the decisions before ``key`` in ``space.keys``
    order). The controller then masks the logits of the disallowed options
    both when sampling and in the teacher-forced log-probabilities and entropy
    of the update, so every sample is valid for the space and the gradient is
    the masked policy's. Spaces without it are sampled unmasked.

    A space may fix the first decisions with ``prefixes``, a list of partial
    archs over the same first keys of ``space.keys`` (a
    :class:`~nas_tasks.space.PrefixedSpace`: a stage of a multi-level
    search). Every sample then starts with one of them, picked uniformly
    with replacement, teacher-forced through the LSTM, and the controller
    decides only the later decisions; log-probabilities and entropy cover
    those only.

    :attr:`history` holds ``(step, mean reward, best reward, baseline after
    the update)`` per update.
    """

    uses_candidates_per_round = False
    round_size_setting = 'one batch (strategy.batch_size candidates)'

    def __init__(self, space: CategoricalSpace, num_steps: int = 100, batch_size: int = 8,
                 hidden_size: int = 100, lr: float = 3.5e-4, baseline_decay: float = 0.95,
                 entropy_weight: float = 1e-4, grad_clip: float | None = 5.0,
                 temperature: float | None = None, tanh_constant: float | None = None,
                 ppo_clip: float | None = None, ppo_epochs: int = 1, allow_repeats: bool = False,
                 betas: tuple[float, float] = (0.9, 0.999), entropy_in_reward: bool = False,
                 detach_entropy: bool = True, baseline_reset_steps: int | None = None,
                 first_input: str = 'learned', init_range: float | None = 0.1, seed: int = 0,
                 constraint: Callable[[Arch], bool] | None = None,
                 max_sample_tries: int = 1000):
        super().__init__(space, seed, constraint, max_sample_tries)
        check_int('num_steps', num_steps, minimum=1)
        check_int('batch_size', batch_size, minimum=1)
        check_int('hidden_size', hidden_size, minimum=1)
        check_int('ppo_epochs', ppo_epochs, minimum=1)
        check_int('seed', seed, minimum=0)
        check_prob('baseline_decay', baseline_decay)
        check_number('lr', lr, inclusive=False)
        check_number('entropy_weight', entropy_weight)
        if first_input not in FIRST_INPUTS:
            raise NasError(f"first_input must be one of {', '.join(map(repr, FIRST_INPUTS))}, "
                           f'got {first_input!r}')
        for name, value in (('grad_clip', grad_clip), ('temperature', temperature),
                            ('tanh_constant', tanh_constant), ('ppo_clip', ppo_clip),
                            ('init_range', init_range)):
            if value is not None:
                check_number(name, value, inclusive=False)
        if ppo_clip is not None and ppo_clip >= 1:
            raise NasError(f'ppo_clip must be in (0, 1) or None, got {ppo_clip!r}')
        if ppo_epochs > 1 and ppo_clip is None:
            raise NasError(f'ppo_epochs={ppo_epochs} needs ppo_clip: plain REINFORCE makes one '
                           'update per batch, as later passes would be off-policy')
        for name, flag in (('allow_repeats', allow_repeats), ('entropy_in_reward', entropy_in_reward),
                           ('detach_entropy', detach_entropy)):
            if not isinstance(flag, bool):
                raise NasError(f'{name} must be True or False, got {flag!r}')
        if baseline_reset_steps is not None:
            check_int('baseline_reset_steps', baseline_reset_steps, minimum=1)
        if (not isinstance(betas, (list, tuple)) or len(betas) != 2
                or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas)):
            raise NasError(f'betas must be two numbers in [0, 1), got {betas!r}')
        self.num_steps = num_steps
        self.batch_size = batch_size
        self.baseline_decay = baseline_decay
        self.entropy_weight = entropy_weight
        self.grad_clip = grad_clip
        self.ppo_clip = ppo_clip
        self.ppo_epochs = ppo_epochs
        self.allow_repeats = allow_repeats
        self.entropy_in_reward = entropy_in_reward
        self.detach_entropy = detach_entropy
        self.baseline_reset_steps = baseline_reset_steps
        self.generator = torch.Generator().manual_seed(seed)
        self._options = [space.options(key) for key in space.keys]
        # Keyed on the type too: 1, 1.0 and True are distinct options.
        self._index = [{(type(o), o): i for i, o in enumerate(opts)} for opts in self._options]
        self._prefix_indices = self._encode_prefixes(getattr(space, 'prefixes', None))
        self.controller = self._initial_controller(hidden_size, temperature, tanh_constant,
                                                   first_input == 'learned', init_range)
        self.optimizer = torch.optim.Adam(self.controller.parameters(), lr=lr, betas=tuple(betas))
        self.step = 0  # controller updates made
        self.baseline: float | None = None
        self.history: list[tuple[int, float, float, float | None]] = []
        self._history_text = HistoryText()  # the history as the checkpoint stores it
        self._scalars: dict[str, float] = {}  # of the latest update, for log_scalars (not state)
        self._proposal_log_probs: dict[str, float] = {}  # p_old for PPO, until told

    def _initial_controller(self, hidden_size: int, temperature: float | None,
                            tanh_constant: float | None, learned_start: bool,
                            init_range: float | None) -> _LSTMController:
        """The LSTM, initialised from :attr:`generator` (the global RNG is left alone)."""
        with torch.random.fork_rng(devices=[]):
            if init_range is None:  # torch's default initialisations draw from the global RNG
                torch.manual_seed(int(torch.randint(2 ** 62, (1,), generator=self.generator)))
            controller = _LSTMController([len(o) for o in self._options], hidden_size,
                                         temperature, tanh_constant, learned_start)
            with torch.no_grad():
                if init_range is not None:
                    for param in controller.parameters():  # ENAS's initialisation
                        param.uniform_(-init_range, init_range, generator=self.generator)
                elif controller.start is not None:
                    nn.init.normal_(controller.start)  # as an embedding row (nn.Embedding's default)
        return controller

    @property
    def done(self) -> bool:
        return self.step >= self.num_steps or (not self.allow_repeats and self._exhausted())

    @property
    def total_rounds(self) -> int:
        """Rounds of the search loop this strategy needs: one per controller update."""
        return self.num_steps

    # -- the policy ------------------------------------------------------------

    def log_prob_and_entropy(self, archs: list[Arch]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per architecture, the controller's log-probability of it and the
        entropy of its decisions (summed), by teacher forcing under the same
        masks as sampling, so the gradient is the masked policy's; differentiable."""
        for arch in archs:
            self.space.validate(arch)
        indices = torch.tensor([self._indices_of(arch, self.space.keys) for arch in archs],
                               dtype=torch.long)
        _, log_prob, entropy = self.controller(len(archs), lambda step, _: indices[:, step],
                                               self._allowed_mask, self._num_fixed)
        return log_prob, entropy

    def _indices_of(self, arch: Arch, keys: list[str]) -> list[int]:
        return [index[(type(arch[key]), arch[key])] for index, key in zip(self._index, keys)]

    def _encode_prefixes(self, prefixes: list[Arch] | None) -> torch.Tensor | None:
        """The option indices ``[P, F]`` of the space's fixed prefixes; None
        without any (or with empty ones), so such a controller samples as before."""
        if not prefixes or not prefixes[0]:
            return None
        return torch.tensor([self._indices_of(prefix, list(prefix)) for prefix in prefixes],
                            dtype=torch.long)

    @property
    def _num_fixed(self) -> int:
        return 0 if self._prefix_indices is None else self._prefix_indices.shape[1]

    def sample_archs(self, count: int) -> list[Arch]:
        """``count`` architectures from the policy (after a prefix, where the
        space fixes some), neither proposed nor de-duplicated."""
        fixed = None
        if self._prefix_indices is not None:  # uniformly, with replacement (AutoGAN's np.random.choice)
            picks = torch.randint(len(self._prefix_indices), (count,), generator=self.generator)
            fixed = self._prefix_indices[picks]

        def choose(step: int, log_probs: torch.Tensor) -> torch.Tensor:
            if step < self._num_fixed:
                return fixed[:, step]
            return torch.multinomial(log_probs.exp(), 1, generator=self.generator).squeeze(1)

        with torch.no_grad():
            indices, _, _ = self.controller(count, choose, self._allowed_mask, self._num_fixed)
        return [self._to_arch(row) for row in indices.tolist()]

    def position(self, round_index: int) -> SearchPosition:
        """Round ``round_index`` is controller update :attr:`step`."""
        return SearchPosition(round_index, 0, self.step)

    def sample_for_training(self) -> Arch:
        """One architecture from the controller's policy (masked as in :meth:`ask`), not proposed."""
        return self.sample_archs(1)[0]

    def _to_arch(self, row: list[int]) -> Arch:
        """The (partial) arch of the option indices of the first ``len(row)`` decisions."""
        return {key: options[i] for key, options, i in zip(self.space.keys, self._options, row)}

    def _allowed_mask(self, step: int, chosen: list[torch.Tensor]) -> torch.Tensor | None:
        """The options of decision ``step`` that the space allows after the
        ``chosen`` earlier ones, as a ``[B, n]`` mask; None where the space
        has no ``allowed_options`` or allows everything.

        A space opts in with ``allowed_options(key, partial_arch) -> list[bool]
        | None`` (NAS-FPN: a cell's second input must differ from its first).
        Masking the logits makes every sample valid, where redrawing invalid
        samples would waste draws and bias the policy gradient.
        """
        allowed_options = getattr(self.space, 'allowed_options', None)
        if allowed_options is None:
            return None
        key = self.space.keys[step]
        # Before the first decision there is one (empty) history, broadcast over the batch.
        histories = torch.stack(chosen, dim=1).tolist() if chosen else [[]]
        num_options = len(self._options[step])
        rows = []
        for history in histories:
            allowed = allowed_options(key, self._to_arch(history))
            if allowed is not None and (len(allowed) != num_options or not any(allowed)):
                raise NasError(f"space '{self.space.name}': allowed_options({key!r}, ...) must give "
                               f'{num_options} booleans with at least one True, got {allowed!r}')
            rows.append([True] * num_options if allowed is None else [bool(a) for a in allowed])
        mask = torch.tensor(rows, dtype=torch.bool)
        return None if mask.all() else mask

    def _sampler(self) -> Callable[[], Arch]:
        """``make`` for the draw loop: one controller sample per call, drawn
        ``batch_size`` at a time, as a converged controller's samples are
        mostly duplicates to redraw. Samples left at the end of an ask are dropped."""
        block: list[Arch] = []

        def make() -> Arch:
            if not block:
                block.extend(reversed(self.sample_archs(self.batch_size)))
            return block.pop()
        return make

    def save_plots(self, plots_dir: Path, score_name: str,
                   marks: list[tuple[str, SearchPosition]] = ()) -> None:
        """Reward per controller step (batch mean, batch best, baseline) and
        ``marks`` at their steps; called by the search loop."""
        if self.history:
            plot_controller_rewards(self.history, Path(plots_dir) / 'controller_rewards.png',
                                    score_name, marks)

    # -- ask and tell -------------------------------------------------------------

    def ask(self, n: int | None = None) -> list[Arch]:
        if self.done:
            return []
        count = self.batch_size if self.allow_repeats else min(
            self.batch_size, self.space.size() - self.num_proposed)
        make = self._sampler()
        archs = [self._propose(make) for _ in range(count)]
        with torch.no_grad():
            log_probs, _ = self.log_prob_and_entropy(archs)
        for arch, log_prob in zip(archs, log_probs.tolist()):
            self._proposal_log_probs[self.space.canonical(arch)] = log_prob
        return archs

    def _propose(self, make: Callable[[], Arch]) -> Arch:
        if not self.allow_repeats:
            return self.new_child(make)
        for _ in range(self.max_sample_tries):
            arch = make()
            key = self.space.canonical(arch)
            if key in self._seen:  # proposed before, so it satisfies the constraint
                return arch
            if self._satisfies(key, arch):
                self._proposed.append(key)
                self._seen.add(key)
                return arch
        return self.sample_valid()

    def tell(self, archs: list[Arch], results: list[Result]) -> None:
        super().tell(archs, results)
        if not archs:
            return
        scores = [float(result.score) for result in results]
        old_log_prob = [self._proposal_log_probs.pop(self.space.canonical(arch), math.nan) for arch in archs]
        usable = [i for i, score in enumerate(scores) if math.isfinite(score)]
        if self.baseline_reset_steps and self.step % self.baseline_reset_steps == 0:
            self.baseline = None
        mean = best = entropy = math.nan
        if usable:
            archs = [archs[i] for i in usable]
            rewards = self._rewards(archs, [scores[i] for i in usable])
            mean, best = sum(rewards) / len(rewards), max(rewards)
            if self.baseline is None:
                self.baseline = mean
            advantages = torch.tensor([reward - self.baseline for reward in rewards])
            self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * mean
            entropy = self._update(archs, advantages, torch.tensor([old_log_prob[i] for i in usable]))
        self.history.append((self.step, mean, best, self.baseline))
        self._scalars = {'controller/reward': mean, 'controller/reward_best': best,
                         'controller/baseline': self.baseline, 'controller/entropy': entropy}
        self.step += 1

    def log_scalars(self) -> dict[str, float]:
        """The latest update's mean and best reward, the baseline after it, and
        the policy's mean entropy over the updated archs before it (NaN where
        every candidate failed and nothing was updated)."""
        return dict(self._scalars)

    def _rewards(self, archs: list[Arch], scores: list[float]) -> list[float]:
        """The scores, plus ``entropy_weight`` times each arch's entropy with ``entropy_in_reward``."""
        if not self.entropy_in_reward:
            return scores
        with torch.no_grad():
            _, entropy = self.log_prob_and_entropy(archs)
        return [score + self.entropy_weight * float(h) for score, h in zip(scores, entropy)]

    def _update(self, archs: list[Arch], advantages: torch.Tensor, old_log_prob: torch.Tensor) -> float:
        """One REINFORCE step, or ``ppo_epochs`` PPO steps; ``old_log_prob`` is NaN
        where no p_old was recorded (an arch told twice), which then counts as on-policy.
        Returns the mean entropy of ``archs`` before the update."""
        for epoch in range(self.ppo_epochs):
            log_prob, entropy = self.log_prob_and_entropy(archs)
            if epoch == 0:
                entropy_before = float(entropy.detach().mean())
            if self.entropy_in_reward and not self.detach_entropy:
                # The official quirk: the reward's entropy term keeps its gradient
                # (its value, already in the advantages, is unchanged).
                advantages = advantages.detach() + self.entropy_weight * (entropy - entropy.detach())
            if self.ppo_clip is None:
                objective = advantages * log_prob
            else:
                if epoch == 0:
                    old_log_prob = torch.where(old_log_prob.isnan(), log_prob.detach(), old_log_prob)
                ratio = torch.exp(log_prob - old_log_prob)
                clipped = ratio.clamp(1 - self.ppo_clip, 1 + self.ppo_clip)
                objective = torch.minimum(ratio * advantages, clipped * advantages)
            bonus = 0.0 if self.entropy_in_reward else self.entropy_weight * entropy.mean()
            loss = -objective.mean() - bonus
            self.optimizer.zero_grad()
            loss.backward()
            if self.grad_clip is not None:
                nn.utils.clip_grad_norm_(self.controller.parameters(), self.grad_clip)
            self.optimizer.step()
        return entropy_before

    # -- state ----------------------------------------------------------------------

    def state_dict(self) -> dict:
        state = super().state_dict()
        state.update(controller=self.controller.state_dict(),
                     optimizer=self.optimizer.state_dict(),
                     generator=self.generator.get_state(),
                     step=self.step,
                     baseline=self.baseline,
                     history=self._history_text.encode(self.history),
                     proposal_log_probs=dict(self._proposal_log_probs))
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        try:
            self.controller.load_state_dict(state['controller'])
        except RuntimeError as error:
            raise NasError('the saved controller does not fit this one; was hidden_size or '
                           'first_input changed? '
                           f'({first_line(error)})') from error
        self.optimizer.load_state_dict(state['optimizer'])
        self.generator.set_state(state['generator'])
        self.step = state['step']
        self.baseline = state['baseline']
        self.history = [tuple(entry) for entry in decode_history(state['history'])]
        self._proposal_log_probs = dict(state['proposal_log_probs'])

