"""Stand-in estimators registered for tests, importable by a config's
``custom_imports`` (with ``tests/`` on PYTHONPATH), so that searches run
through tools/search.py and torchrun use them too."""
import json
import math
import zlib

from nas_tasks.estimators.base import Estimator
from nas_tasks.registry import ESTIMATORS
from nas_tasks.result import Result
from nas_tasks.space import CategoricalSpace
from nas_tasks.strategies import Evolution

TOY_CHOICES = {f'k{i}': ['a', 'b', 'c', 'd'] for i in range(6)}
# Evolution settings of the failure tests: 4 generations of 8.
STRATEGY = dict(population_size=8, max_generations=4, top_k=3, num_mutation=3, num_crossover=3)
SEED = 7


def make_space(name='toy'):
    return CategoricalSpace(TOY_CHOICES, name=name)


def key(arch):
    return json.dumps(arch, sort_keys=True)


def _first_generation():
    return Evolution(make_space(), seed=SEED, **STRATEGY).ask()


# Two members of the first generation: one raises, one scores NaN.
RAISES, GIVES_NAN = _first_generation()[1:3]


def count_a(arch):
    return float(sum(v == 'a' for v in arch.values()))


@ESTIMATORS.register_module(force=True)
class FlakyEstimator(Estimator):
    """Score = number of 'a' choices, except that RAISES raises and GIVES_NAN scores NaN.

    ``kill_at=k`` interrupts the process at the k-th evaluation (a kill);
    ``healthy=True`` scores every architecture.
    """

    def __init__(self, space=None, config=None, seed=0, healthy=False, kill_at=None):
        self.attempted = []
        self.healthy = healthy
        self.kill_at = kill_at

    def evaluate(self, archs):
        (arch,) = archs  # the loop evaluates one candidate per call
        self.attempted.append(key(arch))
        if len(self.attempted) == self.kill_at:
            raise KeyboardInterrupt('simulated kill')
        if not self.healthy and arch == RAISES:
            raise RuntimeError('CUDA out of memory (simulated)\nsecond line of the message')
        score = math.nan if not self.healthy and arch == GIVES_NAN else count_a(arch)
        return [Result(score, costs={'flops': float(sum(v == 'd' for v in arch.values()))})]


@ESTIMATORS.register_module(force=True)
class DriftingSharedEstimator(Estimator):
    """A stand-in for a shared network that keeps training while the search runs
    (as AutoGAN's shared GAN): each round it "trains" ``steps_per_round`` steps
    on sampled architectures, moving a weight per option it trained; a score is
    the sum of the arch's option weights plus noise seeded by the arch and the
    training done. So scores go stale, and the state (weights, step count, RNG) is
    what a checkpoint must hold for an exact resume.

    ``kill_at=k`` interrupts the process at the k-th evaluation (a kill).
    """

    scores_stay_valid = False

    def __init__(self, space=None, config=None, seed=0, steps_per_round=3, kill_at=None):
        import torch
        self.steps_per_round = steps_per_round
        self.kill_at = kill_at
        self.evaluations = 0
        self.trained_on = []  # (round, arch) of every training step
        self.weights = {}  # 'decision=option' -> float
        self.generator = torch.Generator().manual_seed(seed)

    def train_during_search(self, position, sample_arch):
        import torch
        for _ in range(self.steps_per_round):
            arch = sample_arch()
            self.trained_on.append((position.round, key(arch)))
            for decision, option in arch.items():
                name = f'{decision}={option}'
                step = 0.1 if option == 'a' else float(torch.rand((), generator=self.generator)) * 0.05
                self.weights[name] = self.weights.get(name, 0.0) + step

    def evaluate(self, archs):
        import torch
        (arch,) = archs
        self.evaluations += 1
        if self.evaluations == self.kill_at:
            raise KeyboardInterrupt('simulated kill')
        # Noise drawn from the arch and the training done, not from a running stream:
        # evaluate is deterministic for an arch and the shared weights, as Estimator
        # requires (a restarted round evaluates only the candidates it had not finished).
        seed = zlib.crc32(f'{key(arch)}/{len(self.trained_on)}'.encode())
        noise = float(torch.rand((), generator=torch.Generator().manual_seed(seed))) * 1e-3
        return [Result(sum(self.weights.get(f'{d}={o}', 0.0) for d, o in arch.items()) + noise)]

    def state_dict(self):
        return dict(weights=dict(self.weights), generator=self.generator.get_state(),
                    trained_on=[list(entry) for entry in self.trained_on])

    def load_state_dict(self, state):
        self.weights = dict(state['weights'])
        self.generator.set_state(state['generator'])
        self.trained_on = [tuple(entry) for entry in state['trained_on']]


@ESTIMATORS.register_module(force=True)
class DyingEstimator(Estimator):
    """Scores like FlakyEstimator (healthy), logs every candidate it finishes, and on its
    first attempt dies hard in the middle of round ``die_in_round`` (under 2 ranks).

    Every finished evaluation is a line ``{"round", "arch"}`` in
    ``<work_dir>/evaluations/<attempt>_rank<r>.jsonl``, where ``attempt`` is
    ``attempt`` if given, else ``restart<TORCHELASTIC_RESTART_COUNT>``.

    The death, while ``<work_dir>/died`` does not exist, in round ``die_in_round``:
    rank 1, at its second candidate of the round, waits until the round journal
    holds two finished candidates (its own first and rank 0's first), then writes
    ``died`` and ends its process with ``os._exit`` (no cleanup, as a killed
    worker); rank 0, at its second candidate, waits to be killed by the launcher.
    So exactly those two candidates finished before the death, whatever the timing.
    """

    WAIT_SECONDS = 300  # a safety net: a test that goes wrong fails instead of hanging

    def __init__(self, space=None, config=None, seed=0, work_dir=None, die_in_round=None,
                 attempt=None):
        import os
        from pathlib import Path
        self.work_dir = Path(work_dir)
        self.die_in_round = die_in_round
        self.attempt = attempt or f"restart{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"
        self.dies = die_in_round is not None and not (self.work_dir / 'died').exists()
        self.round = None
        self.in_round = 0

    def train_during_search(self, position, sample_arch):
        self.round, self.in_round = position.round, 0

    def evaluate(self, archs):
        from nas_tasks import dist
        from nas_tasks.io import append_jsonl
        (arch,) = archs
        self.in_round += 1
        if self.dies and self.round == self.die_in_round and self.in_round == 2:
            if dist.get_rank() == 1:
                self._die()
            else:
                self._wait_for('the launcher to kill rank 0', lambda: False)
        result = Result(count_a(arch) + 0.01 * sum(v == 'b' for v in arch.values()))
        append_jsonl(self.work_dir / 'evaluations' / f'{self.attempt}_rank{dist.get_rank()}.jsonl',
                     dict(round=self.round, arch=arch))
        return [result]

    def _die(self):
        import os
        journal = self.work_dir / 'round_journal' / f'round_{self.round:06d}'
        self._wait_for('two finished candidates in the round journal',
                       lambda: len([p for p in journal.glob('[!.]*.json')
                                    if p.name != 'proposals.json']) >= 2)
        (self.work_dir / 'died').write_text(f'rank 1 died in round {self.round}\n')
        os._exit(17)

    def _wait_for(self, what, condition):
        import time
        deadline = time.monotonic() + self.WAIT_SECONDS
        while not condition():
            if time.monotonic() > deadline:
                raise RuntimeError(f'DyingEstimator waited {self.WAIT_SECONDS} s for {what}')
            time.sleep(0.05)


@ESTIMATORS.register_module(force=True)
class CostedEstimator(DyingEstimator):
    """DyingEstimator that never dies and says what each candidate costs: 1 + 10 per 'd'."""

    def __init__(self, space=None, config=None, seed=0, work_dir=None):
        super().__init__(space, config, seed, work_dir=work_dir)

    def evaluation_cost(self, arch):
        return 1.0 + 10.0 * sum(v == 'd' for v in arch.values())
