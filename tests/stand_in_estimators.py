"""Stand-in estimators registered for tests, importable by a config's
``custom_imports`` (with ``tests/`` on PYTHONPATH), so that searches run
through tools/search.py and torchrun use them too."""
import json
import math

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
