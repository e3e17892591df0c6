"""Stand-in diagnosis parts registered for tests of the core's diagnosis (random baseline,
strategy baseline) without a task: a standalone "training" that scores an arch by a
fixed function of it, and a source of random architectures for a config with no
sampleable space (as a differentiable search's). Importable by a config's
``custom_imports`` (with ``tests/`` on PYTHONPATH)."""
import json
import os
from pathlib import Path

from nas_tasks.diagnostics import (RANDOM_ARCHITECTURES, STANDALONE_RECIPES, RandomArchitectures,
                                   StandaloneRecipe)
from nas_tasks.estimators.base import Estimator
from nas_tasks.registry import ESTIMATORS
from nas_tasks.result import Result
from nas_tasks.seeding import seed_for
from stand_in_estimators import count_a, make_space

ALL_B = {name: 'b' for name in make_space().keys}
KILL_AFTER = 'STAND_IN_RECIPE_KILL_AFTER'


def standalone_score(arch, seed):
    """count_a plus a tie-breaking part fixed by the arch and the seed (below 0.01)."""
    return count_a(arch) + seed_for(seed, json.dumps(arch, sort_keys=True)) / 2 ** 31 * 0.01


@STANDALONE_RECIPES.register_module(force=True)
class CountingRecipe(StandaloneRecipe):
    """Scores :func:`standalone_score`; writes ``trained.json`` into the run dir (so a test
    sees which archs were trained, and by which process). ``fail_on``: archs (by their
    ``k0`` choice) whose training raises. The environment variable :data:`KILL_AFTER`
    (not a setting: the records keep the settings) ends the process hard, as a SIGKILL,
    after that many trainings."""

    score_name = 'a_count'

    def __init__(self, seed, fail_on=()):
        self.seed = seed
        self.fail_on = tuple(fail_on)
        self.kill_after = int(os.environ[KILL_AFTER]) if os.environ.get(KILL_AFTER) else None
        self.trained = 0

    def train_and_score(self, arch, run_dir):
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / 'trained.json').write_text(json.dumps(dict(arch=arch, pid=os.getpid())))
        if self.kill_after is not None and self.trained == self.kill_after:
            os._exit(9)
        self.trained += 1
        if arch.get('k0') in self.fail_on:
            raise RuntimeError('simulated training failure')
        return Result(standalone_score(arch, self.seed))


@RANDOM_ARCHITECTURES.register_module(force=True)
class ToyArchitectures(RandomArchitectures):
    """Uniform draws of the toy space (of stand_in_estimators), with one reference: all 'b'."""

    def __init__(self):
        self.space = make_space()

    def draw(self, rng):
        return self.space.sample(rng)

    def references(self):
        return {'all_b': dict(ALL_B)}


@ESTIMATORS.register_module(force=True)
class OneShotStandIn(Estimator):
    """A stand-in for a one-shot supernet: ``train_shared`` "trains" (writes
    ``supernet.txt`` into the work dir it is given) unless that file is there, and logs
    every call to ``<work dir>/train_shared.jsonl``; scores are count_a plus a part fixed
    by the arch (no ties)."""

    def __init__(self, seed=0):
        self.seed = seed

    def train_shared(self, work_dir, resume):
        work_dir = Path(work_dir)
        work_dir.mkdir(parents=True, exist_ok=True)
        trained = (work_dir / 'supernet.txt').exists()
        with open(work_dir / 'train_shared.jsonl', 'a') as log:
            log.write(json.dumps(dict(resume=resume, trained_before=trained)) + '\n')
        if not trained:
            (work_dir / 'supernet.txt').write_text('weights\n')

    def evaluate(self, archs):
        return [Result(standalone_score(arch, self.seed)) for arch in archs]
