"""Assemble a search from a config and run it: what tools/search.py calls."""
from __future__ import annotations

from pathlib import Path

from mmengine.config import Config

from nas_tasks import dist
from nas_tasks.builder import build_component, check_settings
from nas_tasks.constraints import ResourceConstraint
from nas_tasks.errors import NasError
from nas_tasks.loop import SearchLoop
from nas_tasks.registry import DIFFERENTIABLE_SEARCHES, ESTIMATORS, SPACES, STRATEGIES

SEARCH_SETTINGS = ('seed', 'candidates_per_round', 'constraints', 'score_name', 'max_rounds')


def build_search(cfg: Config, work_dir: Path) -> SearchLoop:
    for key in ('search_space', 'strategy', 'estimator'):
        if key not in cfg:
            raise NasError(f"the config has no '{key}'; a search config needs search_space, "
                           'strategy, estimator and search')
    settings = dict(cfg.get('search', {}))
    check_settings(settings, SEARCH_SETTINGS, 'search')
    seed = int(settings.get('seed', 0))

    space = build_component(SPACES, cfg.search_space, 'search_space')
    estimator = build_component(ESTIMATORS, cfg.estimator, 'estimator',
                                default_args=dict(space=space, config=cfg, seed=seed))
    constraint = ResourceConstraint(estimator.costs, settings.get('constraints'))
    strategy = build_component(STRATEGIES, cfg.strategy, 'strategy',
                               default_args=dict(space=space, seed=seed, constraint=constraint))
    return SearchLoop(space, strategy, estimator, work_dir,
                      candidates_per_round=int(settings.get('candidates_per_round', 50)),
                      score_name=settings.get('score_name', 'score'),
                      max_rounds=settings.get('max_rounds'))


def run_search(config_path: str, work_dir: str | None, resume: bool, cfg_options: dict,
               launcher: str) -> dict:
    from nas_tasks.builder import load_config
    from nas_tasks.modules import register_all_modules

    cfg = load_config(config_path, cfg_options)
    register_all_modules()
    dist.init_distributed(launcher)
    work_dir_path = Path(work_dir or Path('work_dirs') / Path(config_path).stem)
    if 'differentiable_search' in cfg:
        return run_differentiable_search(cfg, work_dir_path, resume)
    loop = build_search(cfg, work_dir_path)
    best = loop.run(resume=resume)
    return dict(best, work_dir=str(work_dir_path), score_name=loop.score_name)


def run_differentiable_search(cfg: Config, work_dir: Path, resume: bool) -> dict:
    """A gradient-based search: the task trains its search network, then decodes it.

    Its ``run`` returns the found architecture's record (score, costs,
    metrics) like a sample-based search's best record.
    """
    search = build_component(DIFFERENTIABLE_SEARCHES, cfg.differentiable_search,
                             'differentiable_search', default_args=dict(config=cfg))
    best = search.run(work_dir, resume=resume)
    return dict(best, work_dir=str(work_dir), score_name=search.score_name)
