"""What a task brings to a diagnosis: how to train a candidate standalone, and
which other ways of scoring it to compare with the search's (ablations).

Tasks register their recipes here and a config names them in its
``diagnose`` section; the core never imports a task. Both kinds are built
with the whole search config, the search space, the diagnosis seed and the
search's work directory (``config``, ``space``, ``seed``, ``work_dir``),
which a constructor takes when it names them.
"""
from __future__ import annotations

import random
from pathlib import Path

from mmengine.registry import Registry

from nas_tasks.result import Result

# Standalone training of one candidate, scored on the split the search ranked on.
STANDALONE_RECIPES = Registry('standalone recipe', scope='nas_tasks')
# Other scores of the search's candidates (e.g. one-shot scores without BN recalibration).
SEARCH_ABLATIONS = Registry('search ablation', scope='nas_tasks')
# Where a random baseline (tools/diagnose.py --random N) draws its architectures from,
# for searches whose config has no sampleable search_space (the differentiable ones).
RANDOM_ARCHITECTURES = Registry('random architectures', scope='nas_tasks')


class StandaloneRecipe:
    """Trains one architecture on its own and scores it, higher is better.

    ``train_and_score`` runs in one process (each rank trains its own
    candidates under torchrun) and may raise: the diagnosis records the
    failure and goes on. ``run_dir`` is the candidate's own folder, kept
    between runs, so a training killed in the middle may continue from its
    last checkpoint there.
    """

    score_name = 'score'

    def train_and_score(self, arch: dict, run_dir: Path) -> Result:
        raise NotImplementedError


class SearchAblation:
    """Scores the search's candidates another way, to compare with the search's scores.

    ``name`` keys the report; ``description`` says in a few words what differs
    from the search's scoring (it ends up in the verdict).
    """

    name = 'ablation'
    description = 'an ablation'

    def score(self, arch: dict) -> Result:
        raise NotImplementedError


class RandomArchitectures:
    """Draws architectures uniformly from the space a search chose from.

    ``draw(rng)`` returns one architecture under the search's own constraints
    (FLOPs, latency), in the form the search's ``best_arch.json`` holds under
    ``arch`` and the task's standalone recipe takes. Sample-based searches need
    none registered: their ``search_space`` and ``search.constraints`` are
    sampled by the core. Built like the recipes (``config``, ``space``, ``seed``,
    ``work_dir`` where the constructor names them).
    """

    def draw(self, rng: random.Random) -> dict:
        raise NotImplementedError

    def references(self) -> dict[str, dict]:
        """Named architectures of the same space to train and report beside the
        pick and the random ones (FNA: the seed network's own); none by default."""
        return {}
