"""A standalone recipe for differentiable searches: an architecture trained by a
fine-tuning config on the search's training split, scored as the search scored
its own result.

A differentiable search ends with one architecture and an evaluation of it on
its held-out split (``val_dataloader``, by its ``val_evaluator``). Its
random baseline (``tools/diagnose.py --random N``) trains the found
architecture and random ones the same way: the task's fine-tuning config
(model and schedule, through a real mmengine Runner), on the search's
training images, then the search task's own evaluation. A task subclasses
:class:`SearchSplitFineTuning` with its space and where the arch goes in the
fine-tuning model.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from nas_tasks.builder import build_component, load_config
from nas_tasks.built_datasets import parsed_once
from nas_tasks.diagnostics import StandaloneRecipe
from nas_tasks.dist import process_local
from nas_tasks.registry import DIFFERENTIABLE_SEARCHES
from nas_tasks.result import Result
from nas_tasks.seeding import seed_for
from nas_tasks.space import ArchSpace
from nas_tasks.standalone_training import (EVALUATION_KEYS, delete_checkpoints, standalone_runner,
                                           standalone_runner_config, train)


class SearchSplitFineTuning(StandaloneRecipe):
    """Trains an architecture with ``train_config`` and scores it by the search's evaluation.

    The model and the schedule are ``train_config``'s with ``cfg_options``
    merged in; the training images are the search's training split (its
    ``train_dataloader.dataset``) through the fine-tuning config's training
    pipeline; the score is the search task's ``score_name`` by its
    ``val_evaluator`` on its ``val_dataloader`` split, evaluated as the search
    evaluates its result. Each architecture trains with ``seed_for(seed,
    arch)`` in its own Runner folder and resumes from its last checkpoint there
    after a kill.

    Subclasses set :attr:`space` and implement :meth:`check_train_config`
    (refuse a config whose model cannot take an arch of the space; drop
    what the search's own result brought, such as exported weights) and
    :meth:`place_arch`.

    Args:
        config, seed: the search config and the diagnosis seed.
        train_config: path of the fine-tuning config.
        cfg_options: a (nested) dict merged into it (e.g. a shorter schedule).
        log_level: of each training's Runner log (console and file).
        keep_checkpoints: keep each training's checkpoints once it is scored.
    """

    space: ArchSpace

    def __init__(self, config: Config, seed: int, train_config: str,
                 cfg_options: dict | None = None, log_level: str = 'WARNING',
                 keep_checkpoints: bool = False):
        self.seed = seed
        self.log_level = log_level
        self.keep_checkpoints = keep_checkpoints
        # The search task: its score, its held-out split and evaluator, its data scope.
        self.search = build_component(DIFFERENTIABLE_SEARCHES, config.differentiable_search,
                                      'differentiable_search', default_args=dict(config=config))
        self.score_name = self.search.score_name
        cfg = load_config(train_config)
        cfg.merge_from_dict(copy.deepcopy(dict(cfg_options or {})))  # merging consumes _delete_ keys
        self.check_train_config(cfg, config, train_config)
        cfg.train_dataloader.dataset = search_training_images(config, cfg)
        self.train_cfg = cfg
        self._held_out = None

    def check_train_config(self, cfg: Config, search_config: Config, path: str) -> None:
        """Checks (and adjusts) the fine-tuning config ``cfg`` read from ``path``."""
        raise NotImplementedError

    def place_arch(self, cfg: Config, arch: dict) -> None:
        """Puts ``arch`` into the model of the candidate's config ``cfg``."""
        raise NotImplementedError

    def train_and_score(self, arch: dict, run_dir: Path) -> Result:
        self.space.validate(arch)
        run_dir = Path(run_dir)
        seed = seed_for(self.seed, json.dumps(arch, sort_keys=True))
        cfg = standalone_runner_config(self.train_cfg, run_dir, seed, self.log_level,
                                       left_out=EVALUATION_KEYS)
        self.place_arch(cfg, arch)
        with process_local():  # each rank trains its own candidates
            with standalone_runner(cfg, seed) as runner:
                train_loss = train(runner)
                model = runner.model
            metrics = self._evaluate(model)
        if not self.keep_checkpoints:
            delete_checkpoints(run_dir)
        if train_loss is not None:
            metrics['train_loss'] = train_loss
        return Result(score=self.search.score_of(metrics), metrics=metrics)

    def _evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        with DefaultScope.overwrite_default_scope(self.search.default_scope):
            if self._held_out is None:
                self._held_out = self.search.build_dataset('val')
            return self.search.evaluate(model, self._held_out)


def search_training_images(search_cfg: Config, train_cfg: Config) -> dict:
    """The search's training split through ``train_cfg``'s training pipeline,
    parsed once per process for all the candidates."""
    dataset = copy.deepcopy(search_cfg.train_dataloader.dataset)
    pipeline = train_cfg.train_dataloader.get('dataset', {}).get('pipeline')
    if pipeline is not None and 'pipeline' in dataset:
        dataset.pipeline = copy.deepcopy(pipeline)
    return parsed_once(dataset)
