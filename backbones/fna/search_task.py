"""FNA's architecture adaptation as a differentiable search, for any mmdet
detector or mmseg segmentor whose backbone is an :class:`FNASuperNet`.

As the official search (``tools/apis/fna_search_apis.py``): weight steps run
one sampled path per layer (uniform before the architecture updates start,
then drawn from softmax(alpha)); architecture steps weight every candidate by
softmax(alpha), first order, and add ``weight * log_base(expected cost)`` of
the searchable layers. The core's trainer runs both
(``single_path=True, arch_paths='all'``); the task packages register the
detection and segmentation flavours.

After the search: the argmax op per layer, skips removed, becomes a timm
arch_def (``best_arch.json``), and the seed is remapped into that network
(``adapted_weights.pth`` with ``remap_report.json``), as the official
parameter adaptation starts from the seed, not from the super network.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from mmengine.registry import MODELS as MMENGINE_MODELS
from torch import nn

from backbones.resources import count_multiply_adds
from nas_tasks import dist
from nas_tasks.differentiable.task import DifferentiableSearchTask
from nas_tasks.errors import NasError
from nas_tasks.io import atomic_torch_save, atomic_write_json
from nas_tasks.latency import check_clock, describe_estimate_error
from nas_tasks.result import MACS_CONV_MATMUL, arch_metrics
from nas_tasks.workdir import SearchWorkDir

from .adapted import FNA_SPACE, build_adapted, remap_into_adapted
from .layout import SKIP
from .remap import RemapReport, remap_state
from .costs import COST_METRICS, cost_table, expected_cost, load_table, save_table
from .super_net import FNASuperNet, check_seed_settings

COST_TABLE_FILE = 'cost_table.json'
WEIGHTS_FILE = 'adapted_weights.pth'
REPORT_FILE = 'remap_report.json'
# The paper's RetinaNet setting (official configs: sub_loss_factor 0.02, log_base 10,
# MAdds counted at 800x1088).
DEFAULT_COST = dict(metric='madds', weight=0.02, log_base=10, input_size=(800, 1088), table=None,
                    clock='wall')
ADAPTED_INITS = ('seed', 'supernet')


class FNASearchModel(nn.Module):
    """The trainer's view of a detector or segmentor with an FNA super network.

    ``forward(batch)`` is the task's training loss (mmdet/mmseg data
    preprocessing, ``mode='loss'``, ``parse_losses``); ``arch_cost()`` the
    cost term of architecture steps; ``test_step(batch)`` predicts with the
    derived architecture only.
    """

    def __init__(self, task_model: nn.Module, table: list[list[float]], cost_weight: float,
                 log_base: float):
        super().__init__()
        self.task_model = task_model
        self.table, self.cost_weight, self.log_base = table, float(cost_weight), float(log_base)

    @property
    def supernet(self) -> FNASuperNet:
        return self.task_model.backbone

    @property
    def arch_params(self):
        return self.supernet.arch_params

    @property
    def arch_op_names(self) -> dict[str, list[str]]:
        return self.supernet.arch_op_names

    @property
    def arch_row_names(self) -> dict[str, list[str]]:
        return self.supernet.arch_row_names

    def arch_weights(self) -> dict[str, torch.Tensor]:
        return self.supernet.arch_weights()

    def forward(self, batch: dict) -> torch.Tensor:
        data = self.task_model.data_preprocessor(batch, True)
        losses = self.task_model(**data, mode='loss')
        loss, _ = self.task_model.parse_losses(losses)
        return loss

    def expected_cost(self) -> torch.Tensor:
        return expected_cost(self.supernet, self.table)

    def arch_cost(self) -> torch.Tensor:
        return self.cost_weight * torch.log(self.expected_cost()) / math.log(self.log_base)

    @torch.no_grad()
    def test_step(self, batch: dict) -> list:
        with self.supernet.derived_path():
            return self.task_model.test_step(batch)


class FNASearch(DifferentiableSearchTask):
    """FNA's architecture adaptation (the base of the registered detection and
    segmentation searches).

    Args:
        config: the whole config; ``model`` is the detector or segmentor whose
            ``backbone`` is ``dict(type='FNASuperNet', seed=..., ...)``.
        trainer: DifferentiableTrainer settings (FNA's scheme is forced:
            ``single_path=True, arch_paths='all'``).
        cost: ``dict(metric='madds' | 'latency', weight=λ, log_base=τ,
            input_size=(h, w), table=None, clock='wall')``; the architecture
            loss adds ``λ · log_τ(expected cost)``. The table is measured on
            this device once and kept in the work directory
            (``cost_table.json``), or read from ``table``: such a file measured
            elsewhere, e.g. latencies on the device the network will run on
            (``tools/fna_cost_table.py``). ``clock`` times a latency table
            (``'thread'``: see :mod:`nas_tasks.latency`).
        adapted_init: where the adapted network's weights come from:
            ``'seed'`` (the official code: the seed remapped into it, nothing
            from the super network) or ``'supernet'`` (the super network's
            trained weights of the chosen ops, stem and fixed stages; what the
            super network lacks, such as the statistics of its untracked
            BatchNorms, from the seed).
        seed, eval_interval, arch_fraction, weight_pipeline: see
            DifferentiableSearchTask (the detection search trains its weight
            half on the val pipeline, as the official search does).
    """

    flops_convention = MACS_CONV_MATMUL

    def __init__(self, config, trainer: dict, cost: dict | None = None,
                 adapted_init: str = 'seed', eval_interval: int = 0, seed: int = 0,
                 arch_fraction: float = 0.5, weight_pipeline: str | None = None):
        trainer = dict(trainer)
        for key, value in (('single_path', True), ('arch_paths', 'all')):
            if trainer.setdefault(key, value) != value:
                raise NasError(f'FNA trains with {key}={value!r} (the official scheme); remove '
                               f'differentiable_search.trainer.{key}')
        super().__init__(config, trainer, eval_interval=eval_interval, seed=seed,
                         arch_fraction=arch_fraction, weight_pipeline=weight_pipeline)
        backbone = config.get('model', {}).get('backbone', {})
        if backbone.get('type') != 'FNASuperNet':
            raise NasError("an FNA search needs model.backbone=dict(type='FNASuperNet', seed=...)"
                           f", got type {backbone.get('type')!r}")
        self.seed_settings = check_seed_settings(backbone.get('seed'))
        # The backbone's cost as the task runs it: DeepLab dilates at output stride 16.
        self.output_stride = int(backbone.get('output_stride', 32))
        self.width_noise = float(backbone.get('width_noise', 0.0))
        self.cost = {**DEFAULT_COST, **(cost or {})}
        unknown = set(self.cost) - set(DEFAULT_COST)
        if unknown or self.cost['metric'] not in COST_METRICS:
            raise NasError(f'bad differentiable_search.cost {cost!r}: keys are '
                           f"{sorted(DEFAULT_COST)}, metric one of {sorted(COST_METRICS)}")
        if self.cost['metric'] == 'latency' and self.cost['table'] is None:
            check_clock(self.cost['clock'], dist.device())  # before any data is read
        if adapted_init not in ADAPTED_INITS:
            raise NasError(f'adapted_init must be one of {ADAPTED_INITS}, got {adapted_init!r}')
        self.adapted_init = adapted_init
        self.work_path: Path | None = None
        self.search_model: FNASearchModel | None = None

    def run(self, work_dir, resume: bool = False) -> dict:
        self.work_path = Path(work_dir)
        return super().run(work_dir, resume=resume)

    # -- the base's hooks ---------------------------------------------------------
    def build_search_model(self, train_set) -> FNASearchModel:
        task_model = MMENGINE_MODELS.build(self.config.model)
        task_model.init_weights()  # remaps the seed into the super network
        task_model.to(dist.device())
        table = self._cost_table(task_model.backbone)
        self.search_model = FNASearchModel(task_model, table, self.cost['weight'],
                                           self.cost['log_base'])
        return self.search_model

    def decode(self, model: FNASearchModel) -> dict:
        return model.supernet.derived_arch()

    def costs(self, arch: dict) -> dict[str, float]:
        """FLOPs as the paper's MAdds (``flops_convention``) and parameters of the adapted
        backbone, dilated to the super network's output stride as the task runs it."""
        network = build_adapted(arch, features_only=True, output_stride=self.output_stride)
        inputs = torch.zeros(1, 3, *self.cost['input_size'])
        return {'flops': count_multiply_adds(network, inputs),
                'params': float(sum(p.numel() for p in network.parameters()))}

    def export(self, record: dict, work: SearchWorkDir) -> None:
        arch = record['arch']
        FNA_SPACE.save_arch(work.best_arch_path, arch, arch_metrics(record, self.score_name))
        if self.seed_settings['weights'] is None:
            # Nothing learned to remap: the adapted network keeps timm's initialisation.
            state = build_adapted(arch, num_classes=0).state_dict()
            report = {'remapped': {}, 'kept_init': list(state), 'note': 'the seed has no weights'}
        else:
            state, remap = remap_into_adapted(arch, self.seed_settings, self.width_noise)
            report = remap.to_json()
        if self.adapted_init == 'supernet':
            state, inherited = inherit_from_supernet(self.search_model.supernet, arch, state)
            report = {'from_supernet': inherited.remapped, 'from_seed': report}
        atomic_torch_save(state, work / WEIGHTS_FILE)
        atomic_write_json(work / REPORT_FILE, report)

    # -- the cost table ---------------------------------------------------------------
    def _cost_table(self, supernet: FNASuperNet) -> list[list[float]]:
        """The per-candidate table, kept in the work dir: a resumed search uses the
        very table its run started with (a re-measured latency table would differ)."""
        kept = self.work_path / COST_TABLE_FILE
        source = kept if kept.is_file() else self.cost['table']
        metric = self.cost['metric']
        if source is not None:
            document = load_table(source, supernet, metric)
        else:
            # Rank 0 measures and every rank uses its table (latencies differ by rank).
            timing = dict(clock=self.cost['clock']) if metric == 'latency' else {}
            document = (cost_table(supernet, self.cost['input_size'], metric, **timing)
                        if dist.is_main_process() else None)
            document = dist.broadcast_object(document)
        if dist.is_main_process():
            if not kept.is_file():
                kept.parent.mkdir(parents=True, exist_ok=True)
                save_table(kept, document)
            if 'estimate_error' in document:
                # The search's log (the trainer's, opened early: the work dir was accepted).
                SearchWorkDir(self.work_path).open_log().info(
                    f'latency table {source or kept}: '
                    f"{describe_estimate_error(document['estimate_error'], 'whole adapted networks')}")
        return document['table']


def inherit_from_supernet(supernet: FNASuperNet, arch: dict, state: dict
                          ) -> tuple[dict[str, torch.Tensor], RemapReport]:
    """``state`` of the adapted network with every tensor the super network holds for
    it replaced by the super network's: the stem, the fixed stages and each kept
    layer's chosen op. The rest (BatchNorms the super network does not track, the
    head) keeps ``state``'s values."""
    target = build_adapted(arch, num_classes=0)
    target.load_state_dict(state)
    searchable = supernet.layout.searchable
    pairs = [(f'blocks.{key}', f'fixed.{key}') for key in supernet.fixed]
    for stage, stage_ops in enumerate(supernet.derived_ops()):
        kept = [layer for layer, op in enumerate(stage_ops) if op != SKIP]
        for position, layer in enumerate(kept):
            op_index = supernet.layout.ops(layer).index(stage_ops[layer])
            pairs.append((f'blocks.{searchable[stage]}.{position}',
                          f'stages.{stage}.{layer}.candidates.{op_index}'))
    return remap_state(supernet, target, pairs)
