"""Assemble a search from a config and run it: what tools/search.py calls."""
from __future__ import annotations

import os
from pathlib import Path

from mmengine.config import Config
from mmengine.logging import MMLogger

from nas_tasks import dist
from nas_tasks.builder import build_component, check_settings
from nas_tasks.config_checks import check_checkpoint_paths, check_num_classes
from nas_tasks.constraints import ResourceConstraint, combined_costs
from nas_tasks.determinism import check_deterministic_setting, set_deterministic
from nas_tasks.errors import NasError
from nas_tasks.loop import SearchLoop
from nas_tasks.plot_schedule import PLOT_SETTINGS, PlotSchedule
from nas_tasks.registry import COST_MODELS, DIFFERENTIABLE_SEARCHES, ESTIMATORS, SPACES, STRATEGIES
from nas_tasks.search_logging import SearchLog
from nas_tasks.shared_dir import check_shared_work_dir
from nas_tasks.validation import check_int

SEARCH_SETTINGS = ('seed', 'candidates_per_round', 'constraints', 'cost_models', 'score_name',
                   'max_rounds', 'deterministic', *PLOT_SETTINGS)
# The keys of a sample-based search config that are not part of the mmengine
# Runner config it carries (model, dataloaders, schedule): defined here, once.
SEARCH_KEYS = ('search_space', 'strategy', 'estimator', 'search')
DIFFERENTIABLE_SEARCH_KEY = 'differentiable_search'
DEFAULT_CANDIDATES_PER_ROUND = 50
# Settings of a differentiable search (its task's and its trainer's) that a
# sample-based config might hold at the top level, where nothing reads them.
DIFFERENTIABLE_ONLY_KEYS = ('trainer', 'arch_optimizer', 'arch_start_epoch', 'arch_fraction',
                            'arch_paths')
# mmengine Runner settings that a differentiable search's trainer does not read,
# and the trainer's settings that stand for them.
RUNNER_TRAINING_KEYS = {
    'optim_wrapper': 'differentiable_search.trainer.weight_optimizer and arch_optimizer',
    'param_scheduler': 'differentiable_search.trainer.param_scheduler (the same mmengine '
                       'scheduler configs, for the weight optimizer)',
    'train_cfg': 'differentiable_search.trainer.epochs',
}


def runner_config(cfg: Config) -> Config:
    """The mmengine Runner part of a search config: everything but :data:`SEARCH_KEYS`."""
    return Config({key: value for key, value in cfg.to_dict().items() if key not in SEARCH_KEYS})


def check_search_keys(cfg: Config) -> None:
    """One line for a key that the config's kind of search would leave unused.

    A differentiable search config (``differentiable_search``) holds none of
    the sample-based keys (:data:`SEARCH_KEYS`, ``diagnose``, a search
    setting such as ``candidates_per_round`` at the top level) nor an mmengine
    Runner's ``optim_wrapper``, ``param_scheduler`` or ``train_cfg`` (its
    trainer has its own settings); a sample-based one holds no differentiable
    search settings (``trainer``, ``arch_optimizer``, ...) at the top level.
    """
    if DIFFERENTIABLE_SEARCH_KEY not in cfg:
        for key in DIFFERENTIABLE_ONLY_KEYS:
            if key in cfg:
                raise NasError(f"'{key}' belongs to a differentiable search ("
                               f'{DIFFERENTIABLE_SEARCH_KEY}), and this sample-based search does '
                               f"not read it: remove '{key}'")
        return
    # (``diagnose``, read by tools/diagnose.py, belongs to both kinds: a differentiable
    # search's pick is compared with random architectures of its space.)
    sample_based = [*SEARCH_KEYS, *(name for name in SEARCH_SETTINGS if name != 'seed')]
    for key in sample_based:
        if key in cfg:
            where = '' if key in SEARCH_KEYS else f' (search.{key})'
            raise NasError(f"'{key}'{where} belongs to a sample-based search, and this "
                           f'differentiable search ({DIFFERENTIABLE_SEARCH_KEY}) does not read it: '
                           f"remove '{key}' (a search config is one kind or the other)")
    for key, instead in RUNNER_TRAINING_KEYS.items():
        if key in cfg:
            raise NasError(f"a differentiable search does not read '{key}' (an mmengine Runner "
                           f"setting): its trainer takes {instead}; remove '{key}' and set those")


def build_search(cfg: Config, work_dir: Path) -> SearchLoop:
    for key in ('search_space', 'strategy', 'estimator'):
        if key not in cfg:
            raise NasError(f"the config has no '{key}'; a search config needs search_space, "
                           'strategy, estimator and search')
    # Before the estimator builds anything: a missing checkpoint or a
    # class-count mismatch is one line, not a traceback from mmdet.
    check_checkpoint_paths(cfg)
    check_num_classes(cfg)
    settings = dict(cfg.get('search', {}))
    check_settings(settings, SEARCH_SETTINGS, 'search')
    plot_schedule = PlotSchedule.from_settings(settings)  # before anything heavy is built
    seed = int(settings.get('seed', 0))

    space = build_component(SPACES, cfg.search_space, 'search_space')
    estimator = build_component(ESTIMATORS, cfg.estimator, 'estimator',
                                default_args=dict(space=space, config=cfg, seed=seed))
    constraint, extra_costs = build_constraint(cfg, space, estimator, seed)
    strategy = build_component(STRATEGIES, cfg.strategy, 'strategy',
                               default_args=dict(space=space, seed=seed, constraint=constraint))
    return SearchLoop(space, strategy, estimator, work_dir,
                      candidates_per_round=candidates_per_round(settings, strategy),
                      score_name=settings.get('score_name', 'score'),
                      max_rounds=settings.get('max_rounds'), extra_costs=extra_costs,
                      search_log=SearchLog.from_config(cfg, work_dir),
                      plot_schedule=plot_schedule)


def build_constraint(cfg: Config, space, estimator, seed: int):
    """The search's limits (``search.constraints``) over the estimator's costs and those
    of ``search.cost_models``, and the cost models' costs alone (which each record adds);
    what a search filters its proposals with, and what a random baseline draws under."""
    settings = dict(cfg.get('search', {}))
    # Costs of the search's own cost models (e.g. a latency table) join the
    # estimator's, for the limits and in every candidate's record.
    extra_costs = combined_costs(*(
        model.costs for model in _build_cost_models(settings, dict(space=space, config=cfg, seed=seed))))
    constraint = ResourceConstraint(combined_costs(estimator.costs, extra_costs),
                                    settings.get('constraints'))
    return constraint, extra_costs


def _build_cost_models(settings: dict, default_args: dict) -> list:
    """``search.cost_models``: named COST_MODELS configs, e.g.
    ``dict(latency=dict(type='DetNASLatencyTable', input_size=(800, 1333)))``."""
    models = settings.get('cost_models') or {}
    if not isinstance(models, dict):
        raise NasError("search.cost_models must be a dict of named cost models, e.g. "
                       "dict(latency=dict(type='DetNASLatencyTable', input_size=(800, 1333)))")
    return [build_component(COST_MODELS, model, f'search.cost_models.{name}', default_args=default_args)
            for name, model in models.items()]


def candidates_per_round(settings: dict, strategy) -> int:
    """``search.candidates_per_round``, refused where it would be a silent no-op."""
    if 'candidates_per_round' not in settings:
        return DEFAULT_CANDIDATES_PER_ROUND
    value = settings['candidates_per_round']
    if not strategy.uses_candidates_per_round:
        raise NasError(f'search.candidates_per_round is ignored by {type(strategy).__name__}, '
                       f'which proposes {strategy.round_size_setting} per round; remove it and set '
                       'that instead')
    return check_int('search.candidates_per_round', value)


def run_search(config_path: str, work_dir: str | None, resume: bool, cfg_options: dict,
               launcher: str, retry_failed: bool = False) -> dict:
    from nas_tasks.builder import load_config
    from nas_tasks.modules import register_all_modules

    cfg = load_config(config_path, cfg_options)
    check_search_keys(cfg)
    register_all_modules(cfg.get('default_scope'))
    set_deterministic(_deterministic_setting(cfg))  # before any CUDA work
    dist.init_distributed(launcher)
    work_dir_path = Path(work_dir or Path('work_dirs') / Path(config_path).stem)
    check_shared_work_dir(work_dir_path)  # every rank reads what rank 0 writes there
    resume = resume or _resumes_after_a_restart(work_dir_path)
    if 'differentiable_search' in cfg:
        if retry_failed:
            raise NasError('--retry-failed applies to sample-based searches; a differentiable '
                           'search has no candidates to retry')
        return run_differentiable_search(cfg, work_dir_path, resume)
    if retry_failed and not resume:
        raise NasError('--retry-failed retries the failed candidates of an earlier search; '
                       'pass --resume with it')
    loop = build_search(cfg, work_dir_path)
    best = loop.run(resume=resume, retry_failed=retry_failed)
    return dict(best, work_dir=str(work_dir_path), score_name=loop.score_name)


def run_differentiable_search(cfg: Config, work_dir: Path, resume: bool) -> dict:
    """A gradient-based search: the task trains its search network, then decodes it.

    Its ``run`` returns the found architecture's record (score, costs,
    metrics) like a sample-based search's best record.
    """
    check_checkpoint_paths(cfg)
    search = build_component(DIFFERENTIABLE_SEARCHES, cfg.differentiable_search,
                             'differentiable_search', default_args=dict(config=cfg))
    # Before anything trains: a head that predicts another number of classes
    # than the data has is one line (the datasets' classes from the task's scope).
    check_num_classes(cfg, scope=search.default_scope)
    best = search.run(work_dir, resume=resume)
    return dict(best, work_dir=str(work_dir), score_name=search.score_name)


# Set by the launcher when it started this process again after a failure: torchrun's
# elastic agent (--max-restarts) and a requeued Slurm job.
RESTART_COUNT_VARIABLES = ('TORCHELASTIC_RESTART_COUNT', 'SLURM_RESTART_COUNT')


def _resumes_after_a_restart(work_dir: Path) -> bool:
    """Whether this process is a launcher's restart of a search, which then goes on from
    its work directory as if ``--resume`` had been given (saying so in one log line).

    A restart before the first checkpoint starts the search normally: the work
    directory's rules accept a directory that holds no checkpoint yet.
    """
    restarts = {name: os.environ[name] for name in RESTART_COUNT_VARIABLES
                if os.environ.get(name, '0').strip() not in ('', '0')}
    if not restarts:
        return False
    if dist.is_main_process():
        counts = ', '.join(f'{name}={value}' for name, value in restarts.items())
        MMLogger.get_instance('nas_tasks').info(
            f'restarted by the launcher ({counts}): the search goes on from {work_dir} as with '
            '--resume')
    return True


def _deterministic_setting(cfg: Config) -> bool | str:
    """``search.deterministic`` (sample-based) or ``differentiable_search.deterministic``
    (taken out of the task's settings, which do not take it): True, 'warn' or False (default)."""
    if DIFFERENTIABLE_SEARCH_KEY in cfg:
        return check_deterministic_setting(
            cfg[DIFFERENTIABLE_SEARCH_KEY].pop('deterministic', False),
            f'{DIFFERENTIABLE_SEARCH_KEY}.deterministic')
    return check_deterministic_setting(dict(cfg.get('search') or {}).get('deterministic', False),
                                       'search.deterministic')
