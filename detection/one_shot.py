"""One-shot evaluation of backbone candidates inside an mmdet detector.

The supernet is trained inside the detector with mmengine's Runner, one
uniform path per iteration. A candidate inherits the supernet weights, its
BN statistics are recalibrated on training batches, and it is scored by COCO
bbox mAP (mmdet's CocoMetric over pycocotools) on a split held out from
training.
"""
from __future__ import annotations

import copy
import itertools
import time
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner
from torch.utils.data import DataLoader

from detection.data import build_full_split_loader, build_held_out_split, check_dataset_paths
from detection.metrics import score_on_split
from nas_tasks import dist
from nas_tasks.builder import build_component
from nas_tasks.checkpoint import safe_torch_load
from nas_tasks.io import atomic_torch_save
from nas_tasks.constraints import ResourceConstraint, sample_within
from nas_tasks.determinism import runner_randomness
from nas_tasks.dist import process_local
from nas_tasks.errors import NasError
from nas_tasks.estimators.base import Arch, Estimator
from nas_tasks.estimators.bn_recalibration import recalibrate_batch_norm
from nas_tasks.estimators.path_sampling import UniformPathHook, resolve_submodule
from nas_tasks.registry import COST_MODELS, ESTIMATORS
from nas_tasks.result import Result
from nas_tasks.search import runner_config
from nas_tasks.runner import TrainingDiverged, make_runner
from nas_tasks.seeding import seed_everything, seed_for
from nas_tasks.space import CategoricalSpace
from nas_tasks.validation import check_int
from nas_tasks.world_size_hook import WorldSizeHook

SUPERNET_WEIGHTS = 'supernet_final.pth'
SUBNET_WEIGHTS = 'best_subnet.pth'


@ESTIMATORS.register_module()
class OneShotDetectionEstimator(Estimator):
    """Scores backbone architectures with weights inherited from a detection supernet.

    Args:
        space: the backbone search space.
        config: the whole search config; everything but the search keys is
            an mmdet training config (model, dataloaders, optimizer, schedule).
        seed: seeds supernet path sampling and per-candidate evaluation.
        cost_model: config of a registered COST_MODELS entry giving FLOPs and
            params of an arch.
        supernet_path: dotted path of the supernet inside the detector.
        supernet_sampling: optional limits (``dict(flops=dict(min=, max=))``)
            for the paths trained in the supernet.
        bn_recalibration_batches: training batches used to re-estimate BN
            statistics of each candidate.
        score_key: the metric that ranks candidates.
    """

    @property
    def flops_convention(self) -> str | None:
        """The cost model's: it gives the costs (DetNASCostTable: MACS_CONV_MATMUL)."""
        return getattr(self.cost_model, 'flops_convention', None)

    def __init__(self, space: CategoricalSpace, config: Config, cost_model: dict, seed: int = 0,
                 supernet_path: str = 'backbone', supernet_sampling: dict | None = None,
                 bn_recalibration_batches: int = 8, score_key: str = 'bbox_mAP_precise'):
        self.space = space
        self.runner_cfg = runner_config(config)
        self.seed = seed
        self.cost_model = build_component(COST_MODELS, cost_model, 'estimator.cost_model')
        self.supernet_path = supernet_path
        self.supernet_constraint = ResourceConstraint(self.costs, supernet_sampling)
        self.bn_recalibration_batches = check_int('estimator.bn_recalibration_batches',
                                                  bn_recalibration_batches)
        self.score_key = score_key
        for split in ('train_dataloader', 'val_dataloader'):
            if self.runner_cfg.get(split) is None:
                raise NasError(f'the config has no {split}; a one-shot detection search needs '
                               'a training split and a held-out split')
            check_dataset_paths(self.runner_cfg[split]['dataset'], split.split('_')[0])
        self.runner: Runner | None = None
        self._evaluation: tuple[DataLoader, DataLoader, Evaluator] | None = None

    # -- shared weights --------------------------------------------------------
    def train_shared(self, work_dir: Path, resume: bool) -> None:
        supernet_dir = Path(work_dir) / 'supernet'
        final_weights = supernet_dir / SUPERNET_WEIGHTS
        self.runner = self._build_runner(supernet_dir, resume and not final_weights.exists())
        if final_weights.exists():
            self.model.load_state_dict(safe_torch_load(final_weights))
            return
        check_sync_batch_norm_can_train(self.model)
        self.runner.register_hook(UniformPathHook(
            self.space, self.supernet_path, self.seed,
            sample=lambda rng: sample_within(self.space, rng, self.supernet_constraint)))
        try:
            self.runner.train()
        except TrainingDiverged as error:
            raise NasError(
                f'supernet training diverged at iteration {error.iteration} (loss is {error.loss}): '
                'lower the learning rate (optim_wrapper.optimizer.lr) or clip gradients '
                '(optim_wrapper.clip_grad=dict(max_norm=...)), then rerun with --resume to continue '
                f'from the last checkpoint in {supernet_dir}') from None
        dist.on_main_process(lambda: atomic_torch_save(self.model.state_dict(), final_weights))

    def _build_runner(self, supernet_dir: Path, resume: bool) -> Runner:
        cfg = copy.deepcopy(self.runner_cfg)
        cfg.work_dir = str(supernet_dir)
        cfg.launcher = 'pytorch' if dist.is_distributed() else 'none'
        cfg.model_wrapper_cfg = dist.ddp_wrapper_cfg(find_unused_parameters=True) if dist.is_distributed() else None
        cfg.randomness = runner_randomness(self.seed)  # deterministic=True in deterministic mode
        cfg.resume = resume
        # Candidates are validated by evaluate(), not by the Runner's loops.
        for key in ('val_dataloader', 'val_cfg', 'val_evaluator',
                    'test_dataloader', 'test_cfg', 'test_evaluator'):
            cfg[key] = None
        runner = make_runner(cfg)
        # The supernet's checkpoints record the world size (its total batch);
        # resuming them on another one is refused unless --allow-world-size-change.
        runner.register_hook(WorldSizeHook('the supernet'))
        return runner

    @property
    def model(self) -> torch.nn.Module:
        if self.runner is None:
            raise RuntimeError('train_shared() must run before candidates are evaluated')
        model = self.runner.model
        return model.module if is_model_wrapper(model) else model

    # -- candidates ------------------------------------------------------------
    def costs(self, arch: Arch) -> dict[str, float]:
        return self.cost_model.costs(arch)

    def evaluate(self, archs: list[Arch]) -> list[Result]:
        recalibration_loader, val_loader, evaluator = self._evaluation_parts()
        return [self._evaluate_one(arch, recalibration_loader, val_loader, evaluator)
                for arch in archs]

    def _evaluation_parts(self) -> tuple[DataLoader, DataLoader, Evaluator]:
        """Training batches for BN recalibration, the held-out split and its metric, built once."""
        if self._evaluation is None:
            recalibration_loader = build_full_split_loader(self.runner_cfg.train_dataloader, self.seed)
            self._evaluation = (recalibration_loader, *build_held_out_split(self.runner_cfg, self.seed))
        return self._evaluation

    def _activate(self, arch: Arch, recalibration_loader) -> None:
        """Set the candidate's path and recalibrate its BN statistics."""
        self.space.validate(arch)
        seed_everything(seed_for(self.seed, self.space.canonical(arch)))
        model = self.model
        resolve_submodule(model, self.supernet_path).set_arch(arch)
        # Each rank recalibrates its own candidate: nothing may all-reduce across ranks
        # (recalibrate_batch_norm also runs a SyncBN as this process's plain BN).
        with process_local():
            recalibrate_detector_batch_norm(
                model, itertools.islice(recalibration_loader, self.bn_recalibration_batches))

    def _evaluate_one(self, arch: Arch, recalibration_loader, val_loader, evaluator) -> Result:
        start = time.perf_counter()
        self._activate(arch, recalibration_loader)
        recalibrated = time.perf_counter()
        scored = score_on_split(self.model, val_loader, evaluator, self.score_key)
        timings = dict(seconds_bn_recalibration=recalibrated - start,
                       seconds_inference=scored.seconds_inference,
                       seconds_coco_eval=scored.seconds_coco_eval)
        costs = dict(self.costs(arch), seconds=time.perf_counter() - start)
        return Result(score=scored.score, costs=costs, metrics={**scored.metrics, **timings})

    # -- export ----------------------------------------------------------------
    def export(self, arch: Arch, work_dir: Path) -> list[Path]:
        """Write the candidate's backbone weights, sliced from the supernet after BN recalibration."""
        self._activate(arch, self._evaluation_parts()[0])
        supernet = resolve_submodule(self.model, self.supernet_path)
        path = Path(work_dir) / SUBNET_WEIGHTS
        meta = dict(space=self.space.name, space_version=self.space.version, arch=arch)
        atomic_torch_save(dict(state_dict=supernet.subnet_state_dict(arch), meta=meta), path)
        return [path]


def check_sync_batch_norm_can_train(model: torch.nn.Module) -> None:
    """One line, before training, for a SyncBN supernet that cannot train here.

    torch's SyncBatchNorm synchronises in train mode whenever a process group
    exists, and does so on CUDA only: under torchrun on CPUs (gloo) its first
    forward would raise from deep inside the Runner. On one process without a
    group it is plain BN, and the toy configs use BN anyway.
    """
    if not (dist.is_distributed() and dist.device().type == 'cpu'):
        return
    if any(isinstance(module, torch.nn.SyncBatchNorm) for module in model.modules()):
        raise NasError("the supernet has SyncBN (norm_cfg=dict(type='SyncBN')), which torch runs "
                       'on CUDA only, and this run has several CPU processes: run it on GPUs, or '
                       'pass --cfg-options model.backbone.norm_cfg.type=BN')


def recalibrate_detector_batch_norm(detector: torch.nn.Module, batches) -> int:
    """Re-estimate every BN statistic of an mmdet ``detector`` (backbone, neck
    and head) on training ``batches``; returns the number of batches used.

    The forward is mmdet's ``mode='tensor'`` path, the whole network up to the
    head's outputs, so the head's BNs (e.g. ``RetinaSepBNHead``'s) see data
    as well as the backbone's; see :func:`recalibrate_batch_norm` for the
    modes and momenta.
    """
    def forward(batch):
        detector(**detector.data_preprocessor(batch, True), mode='tensor')
    return recalibrate_batch_norm(detector, batches, forward)
