"""The shared base of differentiable search tasks (Auto-DeepLab, FNA, ...).

A task names its data scope and score, and builds, decodes, costs and exports
its search model; everything else is here: the work-dir rules, the datasets,
the deterministic split of the training split into a weight half and an
architecture half, the trainer, held-out evaluation through mmengine's
Evaluator, the result record, and the resume of a finished search.
"""
from __future__ import annotations

import copy
import math
import numbers
import time
from pathlib import Path
from typing import Any, Sequence

import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.evaluator import Evaluator
from mmengine.registry import DATASETS, DefaultScope
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from nas_tasks import dist
from nas_tasks.builder import check_settings, settings_of
from nas_tasks.built_datasets import subset_of
from nas_tasks.data_paths import check_dataset_paths
from nas_tasks.differentiable.schedules import check_retired_settings
from nas_tasks.differentiable.trainer import DifferentiableTrainer
from nas_tasks.errors import NasError
from nas_tasks.report import write_epochs_report
from nas_tasks.result import flops_convention_entry
from nas_tasks.search_logging import SearchLog
from nas_tasks.seeding import seed_everything, seed_for
from nas_tasks.workdir import SearchWorkDir

# Trainer arguments the task passes itself; a config cannot set them.
TRAINER_SUPPLIED = ('model', 'weight_dataset', 'arch_dataset', 'work_dir', 'seed', 'on_epoch_end',
                    'logger', 'search_log')
REQUIRED_CONFIG_KEYS = ('train_dataloader', 'val_dataloader', 'val_evaluator')
# The pipelines the weight half's samples can go through: the training split's own
# (its augmentation included) or val_dataloader.dataset's (no random flip, crop ...).
WEIGHT_PIPELINES = ('train', 'val')


class DifferentiableSearchTask:
    """A differentiable search: train a search model bilevel, decode it, score it, export it.

    Subclasses set the class attributes ``score_name`` (the evaluator's key
    that scores the result, e.g. ``'mIoU'``, ``'coco/bbox_mAP'``) and
    ``default_scope`` (the task package's ``DEFAULT_SCOPE``: the registry the datasets
    and the evaluator are built from), and implement:

    * ``build_search_model(train_set) -> nn.Module``: a model that meets the
      :class:`DifferentiableTrainer` contract and has ``test_step(batch)``
      returning the data samples with predictions, for the evaluator. Built
      after the global generators are seeded from ``seed``, so a rerun (and a
      resume, before it loads the checkpoint) starts from the same weights.
    * ``decode(model) -> dict``: the architecture the trained model stands for.
    * ``costs(arch) -> dict[str, float]``: its FLOPs (``flops``, counted by the
      class's ``flops_convention``), parameters, latency ...
    * ``export(record, work)``: the task's files; called on rank 0 only.

    and may override ``epoch_metrics(trainer, epoch, model, val_set)``
    (default: :meth:`evaluate` every ``eval_interval`` epochs, none when 0),
    and the class attribute ``weight_pipeline`` (the default of the setting).

    Args:
        config: the whole search config; its ``train_dataloader.dataset``
            (split into the two halves), ``val_dataloader`` (the held-out
            evaluation; its ``num_workers``) and ``val_evaluator`` are used.
        trainer: settings of :class:`DifferentiableTrainer`.
        eval_interval: evaluate on the val split after every this many epochs.
        seed: seeds the split, the initial weights and the trainer.
        arch_fraction: the share of the training images in the architecture half.
        weight_pipeline: the pipeline of the weight half's samples: ``'train'``
            (the training split's own: both halves augmented alike; Auto-DeepLab's
            reference code) or ``'val'`` (``val_dataloader.dataset.pipeline``,
            which must load the annotations: the official FNA search trains the
            weights on its half without the random flip). None: the class's
            ``weight_pipeline``. The architecture half keeps the training pipeline.
    """

    score_name: str = ''
    default_scope: str = ''
    # What ``costs()['flops']`` counts: a key of nas_tasks.result.FLOPS_CONVENTIONS.
    flops_convention: str | None = None
    # Top-level config keys the task does not read, each with what stands for it:
    # such a key in the config is refused instead of being silently unused.
    unread_config_keys: dict[str, str] = {}
    # The default of the weight_pipeline setting: one of WEIGHT_PIPELINES.
    weight_pipeline: str = 'train'

    def __init__(self, config: Config, trainer: dict, eval_interval: int = 0, seed: int = 0,
                 arch_fraction: float = 0.5, weight_pipeline: str | None = None):
        if not self.score_name or not self.default_scope:
            raise TypeError(f'{type(self).__name__} must set the class attributes score_name '
                            'and default_scope')
        self.config = config
        self.trainer_cfg = dict(trainer)
        self.eval_interval = int(eval_interval)
        self.seed = int(seed)
        if isinstance(arch_fraction, bool) or not isinstance(arch_fraction, numbers.Real) \
                or not 0 < arch_fraction < 1:
            raise NasError(f'arch_fraction must be a number between 0 and 1 (the share of the '
                           f'training images that train the architecture), got {arch_fraction!r}')
        self.arch_fraction = float(arch_fraction)
        if weight_pipeline is not None:
            if weight_pipeline not in WEIGHT_PIPELINES:
                raise NasError(f"weight_pipeline must be 'train' (the training split's pipeline) "
                               f"or 'val' (val_dataloader.dataset's), got {weight_pipeline!r}")
            self.weight_pipeline = weight_pipeline
        check_retired_settings(self.trainer_cfg)
        check_settings(self.trainer_cfg, settings_of(DifferentiableTrainer, TRAINER_SUPPLIED),
                       'differentiable_search.trainer')
        for key in REQUIRED_CONFIG_KEYS:
            if key not in config:
                raise NasError(f"the config has no '{key}'; {type(self).__name__} needs "
                               f'{self.default_scope} train_dataloader and val_dataloader '
                               f"datasets and a val_evaluator that reports '{self.score_name}'")
        for key, instead in self.unread_config_keys.items():
            if key in config:
                raise NasError(f"{type(self).__name__} does not read '{key}' "
                               f'({_first_setting(config[key], key)} is set): {instead}; '
                               f"remove '{key}'")
        if self.weight_pipeline == 'val':
            self._val_pipeline_steps()  # before any data is read

    # -- what a task implements ------------------------------------------------
    def build_search_model(self, train_set) -> nn.Module:
        raise NotImplementedError

    def decode(self, model: nn.Module) -> dict:
        raise NotImplementedError

    def costs(self, arch: dict) -> dict[str, float]:
        raise NotImplementedError

    def export(self, record: dict, work: SearchWorkDir) -> None:
        raise NotImplementedError

    def epoch_metrics(self, trainer: DifferentiableTrainer, epoch: int, model: nn.Module,
                      val_set) -> dict[str, float]:
        """Metrics for the epoch record (``epoch`` 0-based); runs on every rank."""
        if self.eval_interval and (epoch + 1) % self.eval_interval == 0:
            return self.evaluate(model, val_set)
        return {}

    # -- data ------------------------------------------------------------------
    def _build_dataset(self, dataset_cfg: dict):
        """``dataset_cfg`` built in the task's scope (its library's DATASETS)."""
        with DefaultScope.overwrite_default_scope(self.default_scope):
            return DATASETS.build(dataset_cfg)

    def build_dataset(self, split: str):
        """The ``<split>_dataloader.dataset`` of the config, its paths checked first."""
        dataset_cfg = self.config[f'{split}_dataloader']['dataset']
        check_dataset_paths(dataset_cfg, split)
        return self._build_dataset(dataset_cfg)

    def halves(self, dataset: Sequence) -> tuple[Any, Any]:
        """The weight half and the architecture half of the built training split ``dataset``.

        A permutation seeded by ``seed`` puts ``arch_fraction`` of the images
        (rounded) in the architecture half and the rest in the weight half.
        Both come from the one parse of ``dataset``: each is mmengine
        BaseDataset's ``get_subset`` of it, a dataset of the config's own type
        (mmdet's AspectRatioBatchSampler reads its ``get_data_info``) holding
        the same samples as the config built again with ``indices=`` would.
        With ``weight_pipeline='val'`` the weight half's samples go through
        ``val_dataloader.dataset``'s pipeline instead.
        """
        size = len(dataset)
        num_arch = math.floor(size * self.arch_fraction + 0.5)
        if not 0 < num_arch < size:
            raise NasError(f'the training split has {size} image(s); arch_fraction '
                           f'{self.arch_fraction:g} leaves one half empty, and the search needs '
                           'images in both the weight half and the architecture half')
        if not callable(getattr(dataset, 'get_subset', None)):
            raise NasError(f'train_dataloader.dataset ({type(dataset).__name__}) cannot be split '
                           "into the search's halves: it has no get_subset (use a dataset "
                           "derived from mmengine's BaseDataset)")
        order = torch.randperm(size, generator=torch.Generator().manual_seed(self.seed)).tolist()
        num_weight = size - num_arch
        weight_half = subset_of(dataset, order[:num_weight])
        if self.weight_pipeline == 'val':
            if not hasattr(weight_half, 'pipeline'):
                raise NasError(f"weight_pipeline='val' gives the weight half the val pipeline, "
                               f'but train_dataloader.dataset ({type(dataset).__name__}) has no '
                               "pipeline of its own; set weight_pipeline='train'")
            # get_subset deep-copied the pipeline: replacing it leaves the other half's alone.
            with DefaultScope.overwrite_default_scope(self.default_scope):
                weight_half.pipeline = Compose(self._val_pipeline_steps())
        return weight_half, subset_of(dataset, order[num_weight:])

    def _val_pipeline_steps(self) -> list:
        """A copy of ``val_dataloader.dataset.pipeline``, checked to load the annotations
        (a transform named ``Load*Annotations``) that training samples need."""
        pipeline = self.config.val_dataloader.get('dataset', {}).get('pipeline')
        if not pipeline:
            raise NasError("weight_pipeline='val' trains the weights on val_dataloader.dataset's "
                           "pipeline, but it names none (a wrapped dataset?); give it one or set "
                           "weight_pipeline='train'")
        names = [str(step.get('type')) for step in pipeline if isinstance(step, dict)]
        if not any(name.startswith('Load') and 'Annotation' in name for name in names):
            raise NasError(f"weight_pipeline='val' trains the weights on val_dataloader.dataset's "
                           f'pipeline, which loads no annotations ({names}); add its '
                           "LoadAnnotations transform or set weight_pipeline='train'")
        return copy.deepcopy(list(pipeline))

    # -- evaluation ------------------------------------------------------------
    def _val_loader(self, dataset) -> DataLoader:
        """One image per batch, whatever ``val_dataloader.batch_size`` says.

        Val images may differ in size (ADE20K, VOC, COCO, a user's own data),
        and a preprocessor pads a batch to its largest image. That padding
        and the batch neighbours could change an image's prediction (a head's
        image pooling averages over the padded map), so the score would
        depend on the batch size. mmseg's own test configs evaluate one image
        at a time too.
        """
        sampler = DistributedSampler(dataset, shuffle=False) if dist.is_distributed() else None
        return DataLoader(dataset, batch_size=1, sampler=sampler,
                          num_workers=self.config.val_dataloader.get('num_workers', 0),
                          collate_fn=pseudo_collate)

    def evaluate(self, model: nn.Module, dataset) -> dict[str, float]:
        """``model``'s metrics on ``dataset`` by the config's ``val_evaluator`` (numbers only)."""
        evaluator = Evaluator(copy.deepcopy(self.config.val_evaluator))
        evaluator.dataset_meta = dataset.metainfo
        was_training = model.training
        model.eval()
        with torch.no_grad():
            for batch in self._val_loader(dataset):
                evaluator.process(data_samples=model.test_step(batch), data_batch=batch)
        model.train(was_training)
        metrics = evaluator.evaluate(len(dataset))
        # Metrics come as numpy float32 values, often rounded (IoUMetric: to 2
        # decimals); rounding again drops the float32 noise (42.03, not 42.029998779).
        return {key: round(float(value), 4) for key, value in metrics.items()
                if isinstance(value, numbers.Real)}

    def score_of(self, metrics: dict[str, float]) -> float:
        """The score of the result: ``metrics[score_name]``, which the evaluator must report."""
        if self.score_name not in metrics:
            raise NasError(f"the val_evaluator reports no '{self.score_name}' (it gave "
                           f'{sorted(metrics)}); {type(self).__name__} scores its result by it: '
                           'choose a val_evaluator that reports it')
        return metrics[self.score_name]

    def result_record(self, model: nn.Module, val_set) -> dict:
        """The record of the search's result: the decoded arch, its score, costs and metrics."""
        start = time.perf_counter()
        arch = self.decode(model)
        metrics = self.evaluate(model, val_set)
        costs = self.costs(arch)
        metrics['decode_seconds'] = time.perf_counter() - start
        return dict(arch=arch, score=self.score_of(metrics), costs=costs,
                    **flops_convention_entry(costs, self.flops_convention), metrics=metrics)

    # -- running ---------------------------------------------------------------
    def run(self, work_dir: str | Path, resume: bool = False) -> dict:
        """Search (or finish a search) in ``work_dir``; the found arch's record."""
        work = SearchWorkDir(work_dir)
        work.check(resume)  # before any data is read: a wrong work dir costs no time
        with DefaultScope.overwrite_default_scope(self.default_scope):
            return self._run(work, resume)

    def _run(self, work: SearchWorkDir, resume: bool) -> dict:
        train_set = self.build_dataset('train')
        val_set = self.build_dataset('val')
        weight_half, arch_half = self.halves(train_set)
        # Seeded: a resumed search rebuilds the model before loading its
        # checkpoint, and a rerun with the same seed starts from the same weights.
        seed_everything(seed_for(self.seed, 'search network'))
        model = self.build_search_model(train_set).to(dist.device())
        del train_set  # only the halves train; the whole split need not stay in memory
        trainer = DifferentiableTrainer(
            model, weight_half, arch_half, work_dir=work.path, seed=self.seed,
            on_epoch_end=lambda trainer, epoch: self.epoch_metrics(trainer, epoch, trainer.model,
                                                                   val_set),
            search_log=SearchLog.from_config(self.config, work.path), **self.trainer_cfg)
        del weight_half, arch_half  # the trainer's loaders hold their own copies
        trainer.fit(resume=resume)
        if trainer.result is None:
            trainer.record_result(self.result_record(trainer.model, val_set))
        else:
            trainer.logger.info('the search had finished; exporting its result again')

        def write_results() -> None:
            self.export(trainer.result, work)
            write_epochs_report(work.path, f'{work.path.name}: {type(self).__name__}',
                                self.score_name, trainer.result, trainer.history)
        dist.on_main_process(write_results)  # rank 0 writes; a failure there stops every rank
        trainer.logger.info(f'decoded architecture {trainer.result["arch"]}; {self.score_name} '
                            f'of the search network {trainer.result["score"]:.4f}')
        return trainer.result


def _first_setting(node: Any, key: str) -> str:
    """``key.sub.leaf=value`` of the first leaf setting under ``node`` (for error messages)."""
    while isinstance(node, dict) and node:
        name, node = next(iter(node.items()))
        key = f'{key}.{name}'
    return f'{key}={node!r}'
