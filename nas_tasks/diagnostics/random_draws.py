"""The random architectures a search's pick is compared with (``tools/diagnose.py --random N``).

A sample-based search's own space and limits give them: uniform draws of
``search_space``, redrawn until they meet ``search.constraints`` under the
same cost functions the search filtered its proposals with (the estimator's
and ``search.cost_models``', built by :func:`nas_tasks.search.build_constraint`).
A differentiable search has no sampleable space in its config; it names a
task's :class:`RandomArchitectures` in ``diagnose.random_architectures``
(a sample-based config may too, e.g. for references). Either way the draws
come from one generator seeded by the diagnosis seed alone, so they do not
depend on the number of ranks, and N draws are the first N of N + 1.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Callable

from mmengine.config import Config

from nas_tasks.builder import build_component
from nas_tasks.constraints import sample_within
from nas_tasks.diagnostics.recipes import RANDOM_ARCHITECTURES, RandomArchitectures
from nas_tasks.errors import NasError
from nas_tasks.registry import ESTIMATORS
from nas_tasks.search import build_constraint
from nas_tasks.seeding import seed_for

# Draws per wanted architecture before a space is judged too small for N distinct ones.
DRAWS_PER_ARCHITECTURE = 100


class SpaceSample(RandomArchitectures):
    """Uniform draws of a sample-based search's space within its limits (``constraint``:
    arch -> bool, None for none), by rejection, as the search's own sampling."""

    def __init__(self, space, constraint: Callable[[dict], bool] | None):
        self.space = space
        self.constraint = constraint

    def draw(self, rng: random.Random) -> dict:
        return sample_within(self.space, rng, self.constraint)


def canonical_json(arch: dict) -> str:
    """An arch as canonical JSON (a differentiable search's archs have no space object)."""
    return json.dumps(arch, sort_keys=True, separators=(',', ':'))


def build_random_architectures(cfg: Config, space, section: dict | None, seed: int,
                               work_dir: Path) -> RandomArchitectures:
    """The source of the random architectures: ``diagnose.random_architectures`` if the
    config names one, else the sample-based search's space under its limits."""
    if section:
        return build_component(RANDOM_ARCHITECTURES, section, 'diagnose.random_architectures',
                               default_args=dict(config=cfg, space=space, seed=seed, work_dir=work_dir))
    if space is None:
        raise NasError("a differentiable search's config names where random architectures come "
                       "from: diagnose.random_architectures=dict(type=...) (one of the task's "
                       'RANDOM_ARCHITECTURES, see docs/diagnostics.md)')
    return SpaceSample(space, search_constraint(cfg, space))


def search_constraint(cfg: Config, space) -> Callable[[dict], bool] | None:
    """The sample-based search's ``search.constraints`` as it checked them; None without limits
    (then nothing is built: the estimator is needed only for its cost functions)."""
    if not dict(cfg.get('search') or {}).get('constraints'):
        return None
    seed = int(cfg.search.get('seed', 0))
    estimator = build_component(ESTIMATORS, cfg.estimator, 'estimator',
                                default_args=dict(space=space, config=cfg, seed=seed))
    constraint, _ = build_constraint(cfg, space, estimator, seed)
    return constraint


def draw_distinct(source: RandomArchitectures, count: int, seed: int,
                  canonical: Callable[[dict], str] = canonical_json) -> list[dict]:
    """``count`` distinct architectures from ``source`` (a repeat is drawn again), in the
    order drawn, from a generator seeded by ``seed`` only. An architecture equal to the
    search's pick is kept: the pick is a member of the space like any other."""
    rng = random.Random(seed_for(seed, 'random baseline'))
    drawn: dict[str, dict] = {}
    for _ in range(count * DRAWS_PER_ARCHITECTURE):
        if len(drawn) == count:
            break
        arch = source.draw(rng)
        drawn.setdefault(canonical(arch), arch)
    if len(drawn) < count:
        raise NasError(f'only {len(drawn)} distinct architectures in {count * DRAWS_PER_ARCHITECTURE} '
                       f'random draws; the space (within its limits) is too small for --random '
                       f'{count}: ask for fewer')
    return list(drawn.values())
