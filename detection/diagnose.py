"""Diagnosis recipes of the detection tasks (tools/diagnose.py, docs/diagnostics.md).

``DetectorStandaloneTraining`` trains the detector with one candidate's
backbone (DetNAS) or neck (NAS-FPN) on its own and scores it on the held-out
split the search ranked on. ``WithoutBNRecalibration`` scores a one-shot
search's candidates with the supernet's own BN statistics, for the
recalibration ablation.
"""
from __future__ import annotations

import contextlib
import copy
import io
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from detection import DEFAULT_SCOPE
from detection.data import build_held_out_split
from detection.metrics import score_on_split
from detection.one_shot import SUPERNET_WEIGHTS
from mmdet.registry import MODELS
from nas_tasks import dist
from nas_tasks.builder import load_config
from nas_tasks.checkpoint import safe_torch_load
from nas_tasks.built_datasets import parsed_once
from nas_tasks.diagnostics import SEARCH_ABLATIONS, STANDALONE_RECIPES, SearchAblation, StandaloneRecipe
from nas_tasks.dist import process_local
from nas_tasks.errors import NasError
from nas_tasks.estimators.path_sampling import resolve_submodule
from nas_tasks.result import Result
from nas_tasks.search import runner_config
from nas_tasks.seeding import seed_for
from nas_tasks.space import CategoricalSpace
from nas_tasks.standalone_training import (EVALUATION_KEYS, delete_checkpoints, standalone_runner,
                                           standalone_runner_config, train)

ARCH_PARTS = ('backbone', 'neck')


def _score_key(config: Config) -> str:
    """The metric the search ranked by: its estimator's ``score_key``."""
    return config.estimator.get('score_key', 'bbox_mAP_precise')


@STANDALONE_RECIPES.register_module()
class DetectorStandaloneTraining(StandaloneRecipe):
    """Each candidate's detector trained on its own, from scratch, and scored by
    COCO AP on the held-out split the search ranked on.

    The model and the schedule come from ``train_config`` (a fine-tuning
    config such as ``retinanet_detnas_finetune_toy.py``), or from the search
    config itself when it trains each candidate (NAS-FPN's proxy task), with
    ``cfg_options`` merged in (e.g. a longer schedule). The data always comes
    from the search config: training on its training split, scoring on its
    held-out split with its metric, so the two rankings see the same images.
    The candidate's arch goes into ``model.<arch_in>.arch``, and that part
    starts from random weights (its ``init_cfg`` is dropped: a fine-tuning
    config's points at the weights the search exported for its best
    candidate). Every other part keeps its config's initialisation.

    The Runner keeps its config's checkpoint hook, and its work dir is the
    candidate's own folder, so a training killed in the middle continues from
    its last checkpoint there (mmengine's resume; augmentations then differ
    from an uninterrupted run).

    Args:
        config, space, seed: the search config, its space and the diagnosis
            seed (each candidate trains with ``seed_for(seed, arch)``).
        arch_in: ``'backbone'`` (DetNAS) or ``'neck'`` (NAS-FPN).
        train_config: path of the training config; None: the search config.
        cfg_options: a (nested) dict merged into that config.
        score_key: the metric that ranks; default: the search estimator's.
        log_level: of each training's Runner log (console and file).
        keep_checkpoints: keep each training's checkpoints once it is scored
            (by default they are deleted then: the diagnosis needs only the score).
    """

    def __init__(self, config: Config, space: CategoricalSpace, seed: int, arch_in: str,
                 train_config: str | None = None, cfg_options: dict | None = None,
                 score_key: str | None = None, log_level: str = 'WARNING',
                 keep_checkpoints: bool = False):
        if arch_in not in ARCH_PARTS:
            raise NasError(f"diagnose.standalone.arch_in must be one of {ARCH_PARTS}, got {arch_in!r}")
        self.space = space
        self.seed = seed
        self.arch_in = arch_in
        self.search_cfg = runner_config(config)
        self.score_key = score_key or _score_key(config)
        self.score_name = self.score_key
        self.log_level = log_level
        self.keep_checkpoints = keep_checkpoints
        cfg = load_config(train_config) if train_config else copy.deepcopy(self.search_cfg)
        cfg.merge_from_dict(copy.deepcopy(dict(cfg_options or {})))  # merging consumes _delete_ keys
        if 'arch' not in cfg.model.get(arch_in, {}):
            raise NasError(f"the standalone model's {arch_in} takes no 'arch' "
                           f'({(train_config or "the search config")}: model.{arch_in} is '
                           f"{cfg.model.get(arch_in, {}).get('type')}); set diagnose.standalone.arch_in "
                           'to the searched part')
        # The search's data: trained on its training split, scored on its held-out one.
        cfg.train_dataloader = copy.deepcopy(self.search_cfg.train_dataloader)
        self.train_cfg = cfg
        self._held_out = None

    def train_and_score(self, arch: dict, run_dir: Path) -> Result:
        self.space.validate(arch)
        seed = seed_for(self.seed, self.space.canonical(arch))
        if self._held_out is None:
            self._held_out = build_held_out_split(self.search_cfg, self.seed)
        with process_local():  # each rank trains its own candidates
            model, train_loss = self._train(arch, seed, Path(run_dir))
            scored = score_on_split(model, *self._held_out, self.score_key)
        if not self.keep_checkpoints:
            delete_checkpoints(Path(run_dir))
        metrics = dict(scored.metrics, seconds_inference=scored.seconds_inference)
        if train_loss is not None:
            metrics['train_loss'] = train_loss
        return Result(score=scored.score, metrics=metrics)

    def _train(self, arch: dict, seed: int, run_dir: Path) -> tuple[torch.nn.Module, float | None]:
        with standalone_runner(self._runner_config(arch, seed, run_dir), seed) as runner:
            with contextlib.redirect_stdout(io.StringIO()):  # pycocotools indexing prints
                loss = train(runner)
            return runner.model, loss

    def _runner_config(self, arch: dict, seed: int, run_dir: Path) -> Config:
        # Scored on the search's held-out split by score_on_split: no val or test parts.
        cfg = standalone_runner_config(self.train_cfg, run_dir, seed, self.log_level,
                                       left_out=EVALUATION_KEYS)
        part = cfg.model[self.arch_in]
        part.arch = self.space.to_document(arch)  # a document names its space (and DetNAS variant)
        part.pop('init_cfg', None)
        # The K trainings of a process share one parse of the training split.
        cfg.train_dataloader.dataset = parsed_once(cfg.train_dataloader.dataset)
        return cfg


@SEARCH_ABLATIONS.register_module()
class WithoutBNRecalibration(SearchAblation):
    """A one-shot search's candidates scored with the supernet's own BN statistics.

    The search re-estimates each candidate's BN statistics on training
    batches before scoring it (``bn_recalibration_batches``); here the
    candidate runs with the running statistics the supernet accumulated over
    all the paths it trained. Same weights, held-out split and metric.
    """

    name = 'without_bn_recalibration'
    description = 'without BN recalibration'

    def __init__(self, config: Config, space: CategoricalSpace, seed: int, work_dir: Path):
        if config.estimator.get('type') != 'OneShotDetectionEstimator':
            raise NasError(f"the BN recalibration ablation needs a one-shot search; this one's "
                           f"estimator is {config.estimator.get('type')}")
        self.weights = Path(work_dir) / 'supernet' / SUPERNET_WEIGHTS
        if not self.weights.is_file():
            raise NasError(f'{self.weights} not found: the search has not finished training its '
                           'supernet, which the BN recalibration ablation scores')
        self.space = space
        self.seed = seed
        self.runner_cfg = runner_config(config)
        self.supernet_path = config.estimator.get('supernet_path', 'backbone')
        self.score_key = _score_key(config)
        self._parts = None

    def score(self, arch: dict) -> Result:
        self.space.validate(arch)
        model, held_out = self._evaluation_parts()
        resolve_submodule(model, self.supernet_path).set_arch(arch)
        scored = score_on_split(model, *held_out, self.score_key)
        return Result(score=scored.score, metrics=scored.metrics)

    def _evaluation_parts(self):
        """The trained supernet detector (its BN statistics as trained) and the held-out split."""
        if self._parts is None:
            with DefaultScope.overwrite_default_scope(DEFAULT_SCOPE):
                model = MODELS.build(copy.deepcopy(self.runner_cfg.model))
            model.load_state_dict(safe_torch_load(self.weights))
            self._parts = (model.to(dist.device()).eval(), build_held_out_split(self.runner_cfg, self.seed))
        return self._parts
