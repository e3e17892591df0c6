"""Proxy-task evaluation: train each candidate detector briefly, score it by COCO AP.

The NAS-FPN search scores a pyramid architecture by training RetinaNet with
that neck on a proxy task (a small backbone, a reduced input size, a short
schedule) and measuring bbox AP on a split held out from the training split;
that AP is the controller's reward. Everything about the proxy task is an
ordinary mmdet config (model, dataloaders, optimizer, schedule); the estimator
only puts the candidate's arch into ``model.neck.arch``.

Under torchrun the search loop gives each rank whole candidates. Each rank
then trains its candidate in a plain single-process mmengine Runner: see
:func:`process_local`. Each process parses the training split once and every
candidate's Runner trains on a copy that shares its annotations
(:mod:`nas_tasks.built_datasets`); the held-out split and its metric are
built once too.
"""
from __future__ import annotations

import contextlib
import copy
import gc
import hashlib
import io
import time
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.runner import Runner

from backbones.resources import measure
from detection.data import build_held_out_split, check_dataset_paths
from detection.metrics import score_on_split
from detection.nas_fpn.plots import draw_pyramid
from mmdet.registry import MODELS
from nas_tasks.built_datasets import parsed_once
from nas_tasks.determinism import runner_randomness
from nas_tasks.dist import process_local
from nas_tasks.errors import NasError
from nas_tasks.estimators.base import Arch, Estimator
# count_mmengine_instances: the tests and bench/proxy_memory.py read it from here.
from nas_tasks.mmengine_instances import count_mmengine_instances, released_mmengine_instances  # noqa: F401
from nas_tasks.registry import ESTIMATORS
from nas_tasks.result import FLOPS_MMENGINE, Result
from nas_tasks.search import runner_config
from nas_tasks.runner import TrainingDiverged, make_runner
from nas_tasks.seeding import seed_everything, seed_for
from nas_tasks.space import CategoricalSpace

PROXY_DIR = 'proxy'
PYRAMID_PICTURE = 'pyramid.png'


@ESTIMATORS.register_module()
class ProxyDetectionEstimator(Estimator):
    """Scores neck architectures by proxy-task training and held-out COCO AP.

    Its costs are the neck's, by mmengine's FlopAnalyzer (``flops_convention``).

    Every candidate is trained from the config's initial weights (random, or
    a pretrained backbone) with its ``train_cfg`` schedule on the training
    split, then scored on the whole ``val_dataloader`` split. Its seed is
    ``seed_for(seed, space.canonical(arch))``, so its score depends only on
    the arch, not on the round, the rank or the order that evaluates it.

    Args:
        space: the neck search space (e.g. ``NASFPNSpace``).
        config: the whole search config; everything but the search keys is
            an mmdet training config whose ``model.neck`` takes an ``arch``.
        seed: base of the per-candidate seeds.
        score_key: the metric that ranks candidates (the reward).
        cost_input_size: ``(height, width)`` of the image at which the neck's
            FLOPs are counted (the proxy input size).
        log_level: level of each proxy Runner's log (console and its log file
            under ``WORK_DIR/proxy/``); ``'INFO'`` keeps every training log.
    """

    flops_convention = FLOPS_MMENGINE

    def __init__(self, space: CategoricalSpace, config: Config, seed: int = 0,
                 score_key: str = 'bbox_mAP_precise',
                 cost_input_size: tuple[int, int] = (512, 512), log_level: str = 'WARNING'):
        self.space = space
        self.runner_cfg = runner_config(config)
        self.seed = seed
        self.score_key = score_key
        self.cost_input_size = tuple(cost_input_size)
        self.log_level = log_level
        for split in ('train_dataloader', 'val_dataloader'):
            if self.runner_cfg.get(split) is None:
                raise NasError(f'the config has no {split}; a proxy-task search needs a training '
                               'split and a held-out split')
            check_dataset_paths(self.runner_cfg[split]['dataset'], split.split('_')[0])
        if 'arch' not in self.runner_cfg.model.get('neck', {}):
            raise NasError("the config's model.neck has no 'arch': each candidate goes into "
                           "model.neck.arch, so use a searchable neck such as "
                           "dict(type='SearchableNASFPN', arch='nas_fpn', ...)")
        self.proxy_dir: Path | None = None
        self._validation: tuple[torch.utils.data.DataLoader, Evaluator] | None = None
        self._backbone_features: tuple[torch.Tensor, ...] | None = None
        self._costs: dict[str, dict[str, float]] = {}

    def train_shared(self, work_dir: Path, resume: bool) -> None:
        """Nothing is shared between candidates; their Runners write under ``work_dir/proxy``."""
        self.proxy_dir = Path(work_dir) / PROXY_DIR

    # -- costs -------------------------------------------------------------------
    def costs(self, arch: Arch) -> dict[str, float]:
        """FLOPs and params of the candidate neck at ``cost_input_size``, by mmengine's analyzer."""
        key = self.space.canonical(arch)
        if key not in self._costs:
            neck_cfg = copy.deepcopy(self.runner_cfg.model.neck)
            neck_cfg.arch = dict(arch)
            neck_cfg.pop('init_cfg', None)
            with torch.no_grad():
                self._costs[key] = measure(MODELS.build(neck_cfg), self._neck_inputs())
        return dict(self._costs[key])

    def _neck_inputs(self) -> tuple[torch.Tensor, ...]:
        """The backbone's features of one image of ``cost_input_size``, computed once."""
        if self._backbone_features is None:
            backbone_cfg = copy.deepcopy(self.runner_cfg.model.backbone)
            backbone_cfg.pop('init_cfg', None)  # shapes only: no pretrained weights needed
            backbone = MODELS.build(backbone_cfg)
            backbone.eval()  # mmdet's ResNet.train() returns None: no chaining
            with torch.no_grad():
                self._backbone_features = tuple(backbone(torch.zeros(1, 3, *self.cost_input_size)))
        return self._backbone_features

    # -- candidates ----------------------------------------------------------------
    def evaluate(self, archs: list[Arch]) -> list[Result]:
        return [self._evaluate_one(arch) for arch in archs]

    def _evaluate_one(self, arch: Arch) -> Result:
        """Train and score one candidate; a diverged training raises ``FloatingPointError``."""
        self.space.validate(arch)
        key = self.space.canonical(arch)
        val_loader, evaluator = self._validation_parts()
        model = None
        try:
            with process_local():
                start = time.perf_counter()
                model, train_loss = self._train(arch, seed_for(self.seed, key), _run_name(key))
                trained = time.perf_counter()
                scored = score_on_split(model, val_loader, evaluator, self.score_key)
                evaluated = time.perf_counter()
        finally:
            # A Runner is full of reference cycles (hooks, loops): collect it now, so
            # that models and dataloader workers do not pile up across candidates.
            del model
            gc.collect()
        score, metrics = scored.score, scored.metrics
        timings = dict(seconds_training=trained - start, seconds_inference=scored.seconds_inference,
                       seconds_coco_eval=scored.seconds_coco_eval)
        return Result(score=score, costs=dict(self.costs(arch), seconds=evaluated - start),
                      metrics={**metrics, 'train_loss': train_loss, **timings})

    def _train(self, arch: Arch, seed: int, run_name: str) -> tuple[torch.nn.Module, float]:
        """The detector with ``arch`` trained on the proxy task, and its last training loss.

        Everything the Runner leaves behind (mmengine's named loggers, message
        hubs, visualizers and scopes, its log file) is released when it ends,
        diverged or not.
        """
        seed_everything(seed)
        with released_mmengine_instances():
            runner = self._build_runner(arch, seed, run_name)
            try:
                # pycocotools prints while the training set indexes its annotations.
                with contextlib.redirect_stdout(io.StringIO()):
                    runner.train()
                return runner.model, float(runner.message_hub.get_scalar('train/loss').current())
            except TrainingDiverged as error:
                raise FloatingPointError(
                    f'proxy training diverged at iteration {error.iteration}: loss is {error.loss} '
                    f'(log in {runner.work_dir})') from error
            finally:
                # A diverged run's traceback keeps this frame alive: let go of the Runner.
                del runner

    def _build_runner(self, arch: Arch, seed: int, run_name: str) -> Runner:
        """A single-process Runner that trains the detector with ``arch`` in its neck."""
        if self.proxy_dir is None:
            raise RuntimeError('train_shared(work_dir) must run before candidates are evaluated')
        cfg = copy.deepcopy(self.runner_cfg)
        cfg.model.neck.arch = dict(arch)
        cfg.work_dir = str(self.proxy_dir / run_name)
        cfg.experiment_name = run_name
        cfg.launcher = 'none'
        cfg.model_wrapper_cfg = None
        cfg.randomness = runner_randomness(seed)  # deterministic=True in deterministic mode
        cfg.load_from, cfg.resume = None, False
        cfg.log_level = self.log_level
        # Every candidate trains on the training split parsed once by this process
        # (train2017's annotations: once, not once per candidate).
        cfg.train_dataloader.dataset = parsed_once(cfg.train_dataloader.dataset)
        # The Runner only trains: the held-out split is scored by _evaluate_one,
        # and a proxy model is not worth a checkpoint.
        for key in ('val_dataloader', 'val_cfg', 'val_evaluator',
                    'test_dataloader', 'test_cfg', 'test_evaluator'):
            cfg[key] = None
        cfg.default_hooks = dict(cfg.get('default_hooks') or {}, checkpoint=None)
        if isinstance(cfg.get('visualizer'), dict):
            # Named per run: a shared name would reuse the first run's instance and folder.
            cfg.visualizer.pop('name', None)
        return make_runner(cfg)

    def _validation_parts(self) -> tuple[torch.utils.data.DataLoader, Evaluator]:
        """The whole held-out split and its metric, built once."""
        if self._validation is None:
            self._validation = build_held_out_split(self.runner_cfg, self.seed)
        return self._validation

    # -- export ------------------------------------------------------------------
    def export(self, arch: Arch, work_dir: Path) -> list[Path]:
        """A picture of the found pyramid network, ``work_dir/pyramid.png``."""
        path = Path(work_dir) / PYRAMID_PICTURE
        draw_pyramid(arch, path, num_inputs=self.runner_cfg.model.neck.get('num_outs', 5))
        return [path]


def _run_name(canonical_arch: str) -> str:
    """A short folder name for one candidate's proxy run."""
    return 'arch_' + hashlib.sha1(canonical_arch.encode()).hexdigest()[:12]
