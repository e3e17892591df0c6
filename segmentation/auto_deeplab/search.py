"""Auto-DeepLab search: bilevel training of the search network, then decoding.

The training split is cut into two disjoint halves, as in the paper: the
network weights train on one, the architecture parameters (alpha for the
cell, beta for the trellis) on the other. After training, the cell genotype
keeps the two strongest inputs per block and the network path is decoded by
Viterbi over beta; both go to ``best_arch.json`` with the filter multiplier
the derived network will use, and the search network's mIoU on the val split
is its score. The core's :class:`DifferentiableSearchTask` runs all that
(halves, trainer, evaluation, the record kept in the checkpoint, so that
``--resume`` on a finished search only exports again); this module adds
what is Auto-DeepLab's own.
"""
from __future__ import annotations

import torch
from mmengine.config import Config

from backbones.auto_deeplab.arch import save_arch_document
from backbones.auto_deeplab.decode import decode_genotype, viterbi_path
from backbones.auto_deeplab.derived import AutoDeepLabBackbone
from backbones.auto_deeplab.pictures import draw_genotype, draw_path
from backbones.auto_deeplab.search_network import AutoDeepLabSearchNet
from backbones.resources import measure
from nas_tasks.builder import check_settings, settings_of
from nas_tasks.differentiable.task import DifferentiableSearchTask
from nas_tasks.registry import DIFFERENTIABLE_SEARCHES
from nas_tasks.result import FLOPS_MMENGINE, arch_metrics
from nas_tasks.workdir import SearchWorkDir
from segmentation import DEFAULT_SCOPE
from segmentation.auto_deeplab.search_model import AutoDeepLabSearchModel

# Arguments the task passes itself; a config cannot set them.
NETWORK_SUPPLIED = ('num_classes', 'seed')


@DIFFERENTIABLE_SEARCHES.register_module()
class AutoDeepLabSearch(DifferentiableSearchTask):
    """Binds the Auto-DeepLab search network and the Cityscapes data to the core's search.

    Args:
        config: the whole search config; its ``train_dataloader`` and
            ``val_dataloader`` datasets (mmseg) and ``val_evaluator`` are used.
        network: settings of :class:`AutoDeepLabSearchNet` (num_layers,
            filter_multiplier, block_multiplier, with_cp, ...).
        trainer: settings of the core's DifferentiableTrainer (epochs,
            arch_start_epoch, dataloader, optimizers, ...).
        data_preprocessor: mmseg's SegDataPreProcessor settings.
        export_filter_multiplier: F written to best_arch.json (20 = Auto-DeepLab-S).
        cost_input_size: (height, width) at which the derived network's
            FLOPs are counted.
        eval_interval: mIoU on the val split after every this many epochs.
        seed: seeds the data split, the initial weights, the architecture
            parameters and the trainer.
    """

    score_name = 'mIoU'
    default_scope = DEFAULT_SCOPE
    flops_convention = FLOPS_MMENGINE  # the derived backbone's, by backbones.resources.measure
    unread_config_keys = {'model': 'its search network is differentiable_search.network and '
                                   'predicts the classes of train_dataloader.dataset'}

    def __init__(self, config: Config, network: dict, trainer: dict, data_preprocessor: dict,
                 export_filter_multiplier: int = 20, cost_input_size=(1024, 2048),
                 eval_interval: int = 0, seed: int = 0):
        super().__init__(config, trainer, eval_interval=eval_interval, seed=seed)
        self.network_cfg = dict(network)
        self.data_preprocessor_cfg = dict(data_preprocessor)
        self.export_filter_multiplier = int(export_filter_multiplier)
        self.cost_input_size = tuple(cost_input_size)
        check_settings(self.network_cfg, settings_of(AutoDeepLabSearchNet, NETWORK_SUPPLIED),
                       'differentiable_search.network')

    def build_search_model(self, train_set) -> AutoDeepLabSearchModel:
        from mmseg.registry import MODELS
        net = AutoDeepLabSearchNet(num_classes=len(train_set.metainfo['classes']), seed=self.seed,
                                   **self.network_cfg)
        return AutoDeepLabSearchModel(net, MODELS.build(self.data_preprocessor_cfg))

    def decode(self, model: AutoDeepLabSearchModel) -> dict:
        """The cell genotype (two strongest inputs per block) and the Viterbi path over beta."""
        weights = {name: tensor.detach().cpu() for name, tensor in model.arch_weights().items()}
        return dict(cell=decode_genotype(weights['alpha']), path=viterbi_path(weights['beta']),
                    filter_multiplier=self.export_filter_multiplier)

    def costs(self, arch: dict) -> dict[str, float]:
        """FLOPs and parameters of the derived backbone at ``cost_input_size``."""
        backbone = AutoDeepLabBackbone(arch)
        with torch.no_grad():
            return measure(backbone, torch.zeros(1, 3, *self.cost_input_size))

    def export(self, record: dict, work: SearchWorkDir) -> None:
        """``best_arch.json``, ``path.png`` and ``cell.png`` of ``record``."""
        arch = record['arch']
        save_arch_document(work.best_arch_path, arch, arch_metrics(record, self.score_name))
        draw_path(arch['path'], work / 'path.png')
        draw_genotype(arch['cell'], work / 'cell.png')
