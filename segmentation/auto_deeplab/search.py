"""Auto-DeepLab search: bilevel training of the search network, then decoding.

The training split is cut into two disjoint halves, as in the paper: the
network weights train on one, the architecture parameters (alpha for the
cell, beta for the trellis) on the other. After training, the cell genotype
keeps the two strongest inputs per block and the network path is decoded by
Viterbi over beta; both go to ``best_arch.json`` with the filter multiplier
the derived network will use, and the search network's mIoU on the val split
is its score. That record is kept in the trainer's checkpoint, so ``--resume``
on a finished search writes ``best_arch.json`` and the pictures again from it.
"""
from __future__ import annotations

import numbers
import time
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.evaluator import Evaluator
from mmengine.registry import DefaultScope
from torch.utils.data import DataLoader, Subset

from backbones.auto_deeplab.arch import save_arch_document
from backbones.auto_deeplab.decode import decode_genotype, viterbi_path
from backbones.auto_deeplab.derived import AutoDeepLabBackbone
from backbones.auto_deeplab.pictures import draw_genotype, draw_path
from backbones.auto_deeplab.search_network import AutoDeepLabSearchNet
from backbones.resources import measure
from nas_tasks import dist
from nas_tasks.builder import check_settings, settings_of
from nas_tasks.data_paths import check_dataset_paths
from nas_tasks.differentiable.trainer import DifferentiableTrainer
from nas_tasks.errors import NasError
from nas_tasks.registry import DIFFERENTIABLE_SEARCHES
from nas_tasks.seeding import seed_everything, seed_for
from nas_tasks.workdir import SearchWorkDir
from segmentation.auto_deeplab.search_model import AutoDeepLabSearchModel

# Arguments the task passes itself; a config cannot set them.
NETWORK_SUPPLIED = ('num_classes', 'seed')
TRAINER_SUPPLIED = ('model', 'weight_dataset', 'arch_dataset', 'work_dir', 'seed', 'collate_fn',
                    'on_epoch_end', 'logger')


@DIFFERENTIABLE_SEARCHES.register_module()
class AutoDeepLabSearch:
    """Binds the Auto-DeepLab search network, the Cityscapes data and the trainer.

    Args:
        config: the whole search config; its ``train_dataloader`` and
            ``val_dataloader`` datasets (mmseg) and ``val_evaluator`` are used.
        network: settings of :class:`AutoDeepLabSearchNet` (num_layers,
            filter_multiplier, block_multiplier, with_cp, ...).
        trainer: settings of :class:`DifferentiableTrainer` (epochs,
            arch_start_epoch, optimizers, ...).
        data_preprocessor: mmseg's SegDataPreProcessor settings.
        export_filter_multiplier: F written to best_arch.json (20 = Auto-DeepLab-S).
        cost_input_size: (height, width) at which the derived network's
            FLOPs are counted.
        seed: seeds the data split, the initial weights, the architecture
            parameters and the trainer.
    """

    score_name = 'mIoU'

    def __init__(self, config: Config, network: dict, trainer: dict, data_preprocessor: dict,
                 export_filter_multiplier: int = 20, cost_input_size=(1024, 2048),
                 eval_interval: int = 0, seed: int = 0):
        self.config = config
        self.network_cfg = dict(network)
        self.trainer_cfg = dict(trainer)
        self.data_preprocessor_cfg = dict(data_preprocessor)
        self.export_filter_multiplier = int(export_filter_multiplier)
        self.cost_input_size = tuple(cost_input_size)
        self.eval_interval = int(eval_interval)
        self.seed = int(seed)
        check_settings(self.network_cfg, settings_of(AutoDeepLabSearchNet, NETWORK_SUPPLIED),
                       'differentiable_search.network')
        check_settings(self.trainer_cfg, settings_of(DifferentiableTrainer, TRAINER_SUPPLIED),
                       'differentiable_search.trainer')
        for key in ('train_dataloader', 'val_dataloader', 'val_evaluator'):
            if key not in config:
                raise NasError(f"the config has no '{key}'; an Auto-DeepLab search needs mmseg "
                               'train/val dataloaders and a val_evaluator (IoUMetric)')

    # -- building ------------------------------------------------------------
    def _build_dataset(self, split: str):
        from mmseg.registry import DATASETS
        dataset_cfg = self.config[f'{split}_dataloader']['dataset']
        check_dataset_paths(dataset_cfg, split)
        return DATASETS.build(dataset_cfg)

    def _halves(self, dataset) -> tuple[Subset, Subset]:
        if len(dataset) < 2:
            raise NasError(f'the training split has {len(dataset)} image(s); the search needs at '
                           'least 2 to split into a weight half and an architecture half')
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(self.seed))
        middle = len(dataset) // 2
        return Subset(dataset, order[:middle].tolist()), Subset(dataset, order[middle:].tolist())

    def _build_model(self, num_classes: int) -> AutoDeepLabSearchModel:
        from mmseg.registry import MODELS
        # Seeded: a resumed search rebuilds the network before loading its
        # checkpoint, and a rerun with the same seed starts from the same weights.
        seed_everything(seed_for(self.seed, 'search network'))
        net = AutoDeepLabSearchNet(num_classes=num_classes, seed=self.seed, **self.network_cfg)
        preprocessor = MODELS.build(self.data_preprocessor_cfg)
        model = AutoDeepLabSearchModel(net, preprocessor)
        return model.to(dist.device())

    def _val_loader(self, dataset) -> DataLoader:
        """One image per batch, whatever ``val_dataloader.batch_size`` says.

        Val images may differ in size (ADE20K, VOC, a user's own data), and
        mmseg's preprocessor stacks a test batch only when they do not.
        Padding them to a common size instead would let an image's padding and
        its batch neighbours change its prediction (the heads' image pooling
        averages over the padded map), so the mIoU would depend on the batch
        size. mmseg's own test configs evaluate one image at a time too.
        """
        sampler = None
        if dist.is_distributed():
            sampler = torch.utils.data.DistributedSampler(dataset, shuffle=False)
        return DataLoader(dataset, batch_size=1, sampler=sampler,
                          num_workers=self.config.val_dataloader.get('num_workers', 0),
                          collate_fn=pseudo_collate)

    # -- evaluation ----------------------------------------------------------
    def _evaluate(self, model: AutoDeepLabSearchModel, dataset) -> dict[str, float]:
        evaluator = Evaluator(self.config.val_evaluator)
        evaluator.dataset_meta = dataset.metainfo
        was_training = model.training
        model.eval()
        for batch in self._val_loader(dataset):
            evaluator.process(data_samples=model.test_step(batch), data_batch=batch)
        model.train(was_training)
        metrics = evaluator.evaluate(len(dataset))
        # IoUMetric gives numpy float32 percentages rounded to 2 decimals;
        # rounding again drops the float32 noise (42.03, not 42.029998779).
        return {key: round(float(value), 4) for key, value in metrics.items()
                if isinstance(value, numbers.Real)}

    # -- running -------------------------------------------------------------
    def run(self, work_dir: Path, resume: bool = False) -> dict:
        """Search (or finish a search) in ``work_dir``; the found arch's record."""
        work = SearchWorkDir(work_dir)
        work.check(resume)  # before any data is read: a wrong work dir costs no time
        with DefaultScope.overwrite_default_scope('mmseg'):
            return self._run(work, resume)

    def _run(self, work: SearchWorkDir, resume: bool) -> dict:
        train_set = self._build_dataset('train')
        val_set = self._build_dataset('val')
        weight_half, arch_half = self._halves(train_set)
        model = self._build_model(num_classes=len(train_set.metainfo['classes']))

        def evaluate_epoch(trainer, epoch: int) -> dict:
            if self.eval_interval and (epoch + 1) % self.eval_interval == 0:
                return self._evaluate(model, val_set)
            return {}

        trainer = DifferentiableTrainer(
            model, weight_half, arch_half, work_dir=work.path, seed=self.seed,
            collate_fn=pseudo_collate, on_epoch_end=evaluate_epoch, **self.trainer_cfg)
        trainer.fit(resume=resume)
        if trainer.result is None:
            trainer.record_result(self._decode_and_score(model, val_set))
        else:
            trainer.logger.info('the search had finished; exporting its result again')
        self._export(trainer.result, work)
        arch = trainer.result['arch']
        trainer.logger.info(f'decoded path {arch["path"]}, cell {arch["cell"]}; {self.score_name} '
                            f'of the search network {trainer.result["score"]:.4f}')
        return trainer.result

    def _decode_and_score(self, model: AutoDeepLabSearchModel, val_set) -> dict:
        """The record of the search's result: the decoded arch, its score, costs and metrics."""
        start = time.perf_counter()
        weights = {name: tensor.detach().cpu() for name, tensor in model.arch_weights().items()}
        arch = dict(cell=decode_genotype(weights['alpha']), path=viterbi_path(weights['beta']),
                    filter_multiplier=self.export_filter_multiplier)
        metrics = self._evaluate(model, val_set)
        costs = self._costs(arch)
        metrics['decode_seconds'] = time.perf_counter() - start
        score = metrics.get(self.score_name)
        if score is None:
            raise NasError(f"the val_evaluator reports no '{self.score_name}' "
                           f"(it gave {sorted(metrics)}); use type='IoUMetric'")
        return dict(arch=arch, score=score, costs=costs, metrics=metrics)

    def _export(self, record: dict, work: SearchWorkDir) -> None:
        """``best_arch.json``, ``path.png`` and ``cell.png`` of ``record`` (rank 0 writes)."""
        if dist.is_main_process():
            arch = record['arch']
            save_arch_document(work.best_arch_path, arch,
                               {**record['metrics'], **record['costs'],
                                self.score_name: record['score']})
            draw_path(arch['path'], work / 'path.png')
            draw_genotype(arch['cell'], work / 'cell.png')
        dist.barrier()

    def _costs(self, arch: dict) -> dict[str, float]:
        """FLOPs and parameters of the derived backbone at ``cost_input_size``."""
        backbone = AutoDeepLabBackbone(arch)
        with torch.no_grad():
            return measure(backbone, torch.zeros(1, 3, *self.cost_input_size))
