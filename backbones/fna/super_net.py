"""FNA's super network: a timm seed's searchable stages deepened, every layer a
choice of MBConv blocks (and skip), remapped from the seed's weights.

Every candidate block is built by timm's own EfficientNet builder with the
seed's settings, so a layer's candidate ``k5_e6`` is exactly the block the
adapted network will hold, parameter names included: remapping pairs them by
role, and the derived timm network computes what the super network's path
computed. Registered as a backbone in mmdet's and mmseg's MODELS.
"""
from __future__ import annotations

import contextlib
from functools import partial
from typing import Iterator, Sequence

import torch
from mmdet.registry import MODELS as MMDET_MODELS
from mmseg.registry import MODELS as MMSEG_MODELS
from torch import nn

from nas_tasks.differentiable.arch_params import ArchParameters
from nas_tasks.differentiable.mixed_op import MixedOp
from nas_tasks.errors import NasError

from .layout import DETECTION_DEPTHS, EXPANSIONS, KERNEL_SIZES, SKIP, SearchLayout
from .remap import RemapReport, remap_state, stage_pairs
from .seed import create_seed, seed_definition

# How the searchable layers normalise. 'untracked' is the official search's
# BatchNorm (affine=False, track_running_stats=False): with weights shared by
# every path, per-path running statistics would be meaningless, and each
# batch normalises itself. 'seed' keeps the seed's BatchNorm (affine, tracked).
SEARCHABLE_NORMS = ('untracked', 'seed')


def untrack_batch_norms(module: nn.Module) -> None:
    """Turn every BatchNorm of ``module`` into affine=False, track_running_stats=False.

    In place, after timm built and initialised the block (timm's
    initialisation expects affine norms)."""
    for norm in module.modules():
        if isinstance(norm, nn.modules.batchnorm._BatchNorm):
            norm.affine = norm.track_running_stats = False
            norm.weight = norm.bias = None
            norm.running_mean = norm.running_var = norm.num_batches_tracked = None


def check_seed_settings(seed) -> dict:
    if not isinstance(seed, dict) or not isinstance(seed.get('name'), str):
        raise NasError("seed must be dict(name='<timm model>', weights=PATH or None, prefix='')"
                       f', got {seed!r}')
    unknown = set(seed) - {'name', 'weights', 'prefix'}
    if unknown:
        raise NasError(f'unknown seed settings {sorted(unknown)}; use name, weights and prefix')
    return {'weights': None, 'prefix': '', **seed}


class FNASuperNet(nn.Module):
    """The super network of FNA over a timm seed.

    Args:
        seed: ``dict(name='mobilenetv2_100', weights=PATH or None, prefix='')``:
            the timm seed (created with ``pretrained=False``) and the local
            file its weights are remapped from in :meth:`init_weights` (no
            file: timm's initialisation stays).
        depths: layers per searchable stage (detection 4,4,4,4,4,1;
            segmentation 4,4,6,6,4,1).
        kernel_sizes, expansions: the MBConv candidates (3,5,7 x 3,6).
        out_indices: which of timm's feature levels to return (as
            ``features_only`` numbers them: 0 is stride 2 ... 4 is stride 32).
        output_stride: 32, or 16/8 with dilation (DeepLab): whole stages dilated,
            as the official code does (:mod:`.dilation`).
        searchable_norm: see :data:`SEARCHABLE_NORMS`.
        width_noise: FNA++'s noise on channels beyond the seed's width.
        arch_seed: seeds the architecture logits and the sampled paths.
    """

    def __init__(self, seed: dict, depths: Sequence[int] = DETECTION_DEPTHS,
                 kernel_sizes: Sequence[int] = KERNEL_SIZES,
                 expansions: Sequence[float] = EXPANSIONS,
                 out_indices: Sequence[int] = (1, 2, 3, 4), output_stride: int = 32,
                 searchable_norm: str = 'untracked', width_noise: float = 0.0,
                 arch_seed: int = 0):
        super().__init__()
        self.seed = check_seed_settings(seed)
        if searchable_norm not in SEARCHABLE_NORMS:
            raise NasError(f'searchable_norm must be one of {SEARCHABLE_NORMS}, got '
                           f'{searchable_norm!r}')
        self.width_noise = float(width_noise)
        self.output_stride = output_stride
        self.definition = seed_definition(self.seed['name'])
        self.layout = SearchLayout(self.definition, depths, kernel_sizes, expansions)
        self._build(output_stride, searchable_norm)
        self._set_out_indices(out_indices)
        num_rest = sum(depth - 1 for depth in self.layout.depths)
        shapes = {'first': (len(self.layout.depths), len(self.layout.candidates))}
        if num_rest:
            shapes['rest'] = (num_rest, len(self.layout.candidates) + 1)
        self.arch_params = ArchParameters(shapes, seed=arch_seed, single_path=True)
        self.remap_report: RemapReport | None = None
        self._derived: list[list[int]] | None = None

    # -- building ---------------------------------------------------------------
    def _build(self, output_stride: int, searchable_norm: str) -> None:
        layout = self.layout
        first_op = layout.candidates[0].name
        uniform = layout.arch_def([[first_op] * depth for depth in layout.depths])
        # timm's Features classes take an output_stride for every family.
        build = partial(self.definition.build, features_only=True, output_stride=output_stride)
        fixed = build(uniform)
        self.conv_stem, self.bn1 = fixed.conv_stem, fixed.bn1
        self.fixed = nn.ModuleDict({str(index): fixed.blocks[index]
                                    for index in range(len(fixed.blocks))
                                    if index not in layout.searchable})
        self.feature_info = fixed.feature_info.get_dicts()
        per_candidate = {}
        for candidate in layout.candidates:
            arch_def = layout.arch_def([[candidate.name] * depth for depth in layout.depths])
            per_candidate[candidate.name] = build(arch_def).blocks
        self.stages = nn.ModuleList()
        for stage, (index, depth) in enumerate(zip(layout.searchable, layout.depths)):
            layers = nn.ModuleList()
            for layer in range(depth):
                ops = [per_candidate[name][index][layer] if name != SKIP else nn.Identity()
                       for name in layout.ops(layer)]
                if searchable_norm == 'untracked':
                    for op in ops:
                        untrack_batch_norms(op)
                layers.append(MixedOp(ops))
            self.stages.append(layers)

    def _set_out_indices(self, out_indices: Sequence[int]) -> None:
        levels = len(self.feature_info)
        if not out_indices or any(not isinstance(i, int) or not 0 <= i < levels
                                  for i in out_indices):
            raise NasError(f'out_indices {list(out_indices)} must name feature levels 0..'
                           f'{levels - 1} of seed {self.definition.name}')
        self.out_indices = tuple(out_indices)
        # Feature level -> the stage whose output it is (-1: the stem).
        self._level_stage = [-1 if info['module'] == 'bn1' else int(info['module'].split('.')[1])
                             for info in self.feature_info]

    @property
    def out_channels(self) -> list[int]:
        return [self.feature_info[i]['num_chs'] for i in self.out_indices]

    @property
    def strides(self) -> list[int]:
        return [self.feature_info[i]['reduction'] for i in self.out_indices]

    # -- forward ------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        wanted = {self._level_stage[i] for i in self.out_indices}
        outputs = {}
        x = self.bn1(self.conv_stem(x))
        if -1 in wanted:
            outputs[-1] = x
        layer_weights = self._layer_weights()
        for index in range(len(self.fixed) + len(self.stages)):
            if str(index) in self.fixed:
                x = self.fixed[str(index)](x)
            else:
                stage = self.layout.searchable.index(index)
                for mixed in self.stages[stage]:
                    weights, active = next(layer_weights)
                    x = mixed.candidates[active](x) if weights is None else mixed(x, weights, active)
            if index in wanted:
                outputs[index] = x
        return tuple(outputs[self._level_stage[i]] for i in self.out_indices)

    def _layer_weights(self) -> Iterator[tuple[torch.Tensor, int | None]]:
        """Per searchable layer, in order: the op weights and the one op to run (or None)."""
        if self._derived is not None:
            for stage_ops in self._derived:
                for op in stage_ops:
                    yield None, op
            return
        groups = {name: self.arch_params.op_weights(name) for name in self.arch_params.names()}
        for group, row in self.layer_rows():
            weights, active = groups[group]
            yield weights[row], None if active is None else int(active[row])

    def layer_rows(self) -> list[tuple[str, int]]:
        """(architecture-parameter group, row) of every searchable layer, in network order."""
        rows, counters = [], {'first': 0, 'rest': 0}
        for depth in self.layout.depths:
            for layer in range(depth):
                group = 'first' if layer == 0 else 'rest'
                rows.append((group, counters[group]))
                counters[group] += 1
        return rows

    @contextlib.contextmanager
    def derived_path(self):
        """Run only the derived architecture's ops (argmax per layer), unweighted."""
        self._derived = self.derived_indices()
        try:
            yield
        finally:
            self._derived = None

    # -- the result -----------------------------------------------------------------
    def arch_weights(self) -> dict[str, torch.Tensor]:
        return {name: self.arch_params.softmax(name) for name in self.arch_params.names()}

    @property
    def arch_op_names(self) -> dict[str, list[str]]:
        names = {'first': self.layout.ops(0)}
        if 'rest' in self.arch_params.names():
            names['rest'] = self.layout.ops(1)
        return names

    @property
    def arch_row_names(self) -> dict[str, list[str]]:
        """Names of the rows of ``first`` (each searchable stage's first layer) and
        ``rest`` (the stages' other layers, stage by stage)."""
        names = {'first': [f'stage {stage}, layer 0' for stage in range(len(self.layout.depths))]}
        if 'rest' in self.arch_params.names():
            names['rest'] = [f'stage {stage}, layer {layer}'
                             for stage, depth in enumerate(self.layout.depths)
                             for layer in range(1, depth)]
        return names

    def derived_indices(self) -> list[list[int]]:
        """The argmax op index of every searchable layer, per stage."""
        with torch.no_grad():
            first = self.arch_params.logits['first'].argmax(-1).tolist()
            rest = (self.arch_params.logits['rest'].argmax(-1).tolist()
                    if 'rest' in self.arch_params.names() else [])
        indices, position = [], 0
        for stage, depth in enumerate(self.layout.depths):
            indices.append([first[stage]] + rest[position:position + depth - 1])
            position += depth - 1
        return indices

    def derived_ops(self) -> list[list[str]]:
        return [[self.layout.ops(layer)[index] for layer, index in enumerate(stage)]
                for stage in self.derived_indices()]

    def derived_arch(self) -> dict:
        """The adapted architecture: the seed and the timm arch_def, skips removed."""
        return dict(seed=self.definition.name, arch_def=self.layout.arch_def(self.derived_ops()))

    # -- remapping --------------------------------------------------------------------
    def remap_pairs(self) -> list[tuple[str, str]]:
        """(super-network block, seed block) pairs: every candidate of a layer from
        the same seed layer (the official search's rule), the fixed stages by index."""
        pairs = [(f'fixed.{key}', f'blocks.{key}') for key in self.fixed]
        for layer_pair in stage_pairs(self.layout.depths, self.layout.seed_depths,
                                      lambda s, l: f'stages.{s}.{l}',
                                      lambda s, l: f'blocks.{self.layout.searchable[s]}.{l}'):
            target, source = layer_pair
            mixed = self.get_submodule(target)
            pairs += [(f'{target}.candidates.{i}', source)
                      for i, op in enumerate(mixed.candidates) if not isinstance(op, nn.Identity)]
        return pairs

    def init_weights(self) -> None:
        """Remap the seed's weights in, when a seed weights file is set (mmengine
        calls this when a Runner starts; a detector calls its backbone's)."""
        if self.seed['weights'] is None:
            return
        seed = create_seed(self.seed['name'], self.seed['weights'], self.seed['prefix'])
        state, self.remap_report = remap_state(seed, self, self.remap_pairs(), self.width_noise,
                                                exclude=('arch_params.',))
        self.load_state_dict(state)


MMDET_MODELS.register_module(module=FNASuperNet)
MMSEG_MODELS.register_module(module=FNASuperNet)
