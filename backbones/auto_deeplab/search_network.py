"""The Auto-DeepLab search network (Liu et al., CVPR 2019, section 4).

A stem takes the image to output stride 4 (level 0); then a trellis of L
layers over levels 0..3 (output strides 4, 8, 16, 32). Layer l can be at
levels 0..min(l + 1, 3): the stem is at level 0 and every layer moves at most
one level. The node at (layer l, level k) is the paper's eq. 6::

    H[l][k] = sum over source levels j in {k-1, k, k+1} that layer l-1 has of
              beta[l, j, k - j + 1] * Cell_{l,k}(H[l-2][k], H[l-1][j]; alpha)

with a single alpha [20, 8] shared by all cells and beta [L, 4, 3] indexed
``[layer, source level, direction]``, direction 0 = to the next-finer level
(j -> j-1), 1 = same level, 2 = to the next-coarser level (j -> j+1).
Beta is normalised per (layer, source level) over its valid directions
(those whose source exists at layer l-1 and whose target is a level 0..3),
the paper's beta_{s->s/2} + beta_{s->s} + beta_{s->2s} = 1; invalid entries
are exactly 0. H[l-2][k] is the state of layer l-2 at level k; where that
layer does not reach level k yet, its coarsest state is resized instead (for
layer 0, H[-2] is the stem's stride-2 feature; for layer 1, H[-1] the stem's
output).

Head (section 5.1): at each level of the last layer a simplified ASPP of 3
branches (1x1 conv, one 3x3 conv with atrous rate 96 / s, image pooling),
each with B * F * s / 4 filters, concatenated and projected by a 1x1 conv,
then a 1x1 classifier; the four logit maps are bilinearly upsampled to the
input size and summed.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nas_tasks.differentiable.arch_params import ArchParameters

from .arch import NUM_LEVELS, levels_at, num_edges
from .ops import PRIMITIVES, Stem, level_sizes, resize_to, run_cell
from .search_cell import SearchCell

TO_FINER, SAME, TO_COARSER = 0, 1, 2
# What each direction of beta does to the output stride (for plots).
DIRECTION_NAMES = ('stride ÷2', 'same stride', 'stride ×2')


def beta_mask(num_layers: int) -> torch.Tensor:
    """[L, 4, 3] booleans: which (layer, source level, direction) transitions exist."""
    mask = torch.zeros(num_layers, NUM_LEVELS, 3, dtype=torch.bool)
    for layer in range(num_layers):
        for source in levels_at(layer - 1):
            for direction in (TO_FINER, SAME, TO_COARSER):
                mask[layer, source, direction] = 0 <= source + direction - 1 < NUM_LEVELS
    return mask


def normalize_beta(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the valid directions of each (layer, source level); 0 elsewhere.

    Invalid logits are replaced by the dtype's lowest value (not -inf), so a
    row without any valid direction gives finite values, which the mask then
    zeroes, and no NaN reaches the gradient.
    """
    filled = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
    return torch.softmax(filled, dim=-1) * mask


class SearchASPP(nn.Module):
    """The search-time ASPP of one level: 1x1 conv, 3x3 conv with atrous rate
    ``rate``, image pooling; concatenated, 1x1 projection, 1x1 classifier.

    The image-pooling branch has no BN (a 1x1 map of batch 1 cannot be
    batch-normalised in training)."""

    def __init__(self, in_channels: int, channels: int, rate: int, num_classes: int):
        super().__init__()

        def conv_bn_relu(kernel_size: int, dilation: int = 1, in_ch: int = in_channels):
            return nn.Sequential(
                nn.Conv2d(in_ch, channels, kernel_size, padding=dilation * (kernel_size // 2),
                          dilation=dilation, bias=False),
                nn.BatchNorm2d(channels), nn.ReLU(inplace=True))

        self.conv1x1 = conv_bn_relu(1)
        self.atrous = conv_bn_relu(3, rate)
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1),
                                        nn.Conv2d(in_channels, channels, 1), nn.ReLU(inplace=True))
        self.project = conv_bn_relu(1, in_ch=3 * channels)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = resize_to(self.image_pool(x), x.shape[-2:])
        x = torch.cat([self.conv1x1(x), self.atrous(x), pooled], dim=1)
        return self.classifier(self.project(x))


class AutoDeepLabSearchNet(nn.Module):
    """Args:
        num_classes: classes of the logits.
        num_layers: L (12 in the paper).
        filter_multiplier: F (8 in the paper's search).
        block_multiplier: B, blocks per cell (5); alpha has B(B+3)/2 rows.
        seed: seeds the architecture parameters' initialisation (and sampling).
        single_path: sample one op per edge each step (see ArchParameters);
            only that op runs.
        with_cp: activation checkpointing per cell call (same results, less
            memory, one more forward per cell in backward).
        stem_channels: channels of the two stride-2 stem convs
            (default B*F/2, B*F).
        arch_init_scale: std of the initial architecture logits (1e-3).
    """

    def __init__(self, num_classes: int, num_layers: int = 12, filter_multiplier: int = 8,
                 block_multiplier: int = 5, seed: int = 0, single_path: bool = False,
                 with_cp: bool = False, stem_channels: Sequence[int] | None = None,
                 arch_init_scale: float = 1e-3):
        super().__init__()
        if num_layers < 1 or filter_multiplier < 1 or block_multiplier < 1:
            raise ValueError('num_layers, filter_multiplier and block_multiplier must be >= 1, '
                             f'got {num_layers}, {filter_multiplier}, {block_multiplier}')
        self.num_classes = num_classes
        self.num_layers = num_layers
        self.filter_multiplier = filter_multiplier
        self.block_multiplier = block_multiplier
        self.with_cp = with_cp
        base = block_multiplier * filter_multiplier
        stem_channels = tuple(stem_channels or (max(base // 2, 1), base))
        self.stem = Stem(stem_channels, strides=(2,) * len(stem_channels))

        def channels(layer: int, level: int) -> int:
            if layer == -2:
                return stem_channels[-2] if len(stem_channels) > 1 else 3
            if layer == -1:
                return stem_channels[-1]
            return base * 2 ** level

        self.cells = nn.ModuleDict()
        for layer in range(num_layers):
            for level in levels_at(layer):
                sources = {source - level: channels(layer - 1, source)
                           for source in (level - 1, level, level + 1)
                           if source in levels_at(layer - 1)}
                prev_prev = channels(layer - 2, self._prev_prev_level(layer, level))
                self.cells[self._key(layer, level)] = SearchCell(
                    filter_multiplier * 2 ** level, prev_prev, sources, block_multiplier)
        self.aspp = nn.ModuleDict({
            str(level): SearchASPP(base * 2 ** level, base * 2 ** level, 96 // (4 * 2 ** level),
                                   num_classes)
            for level in levels_at(num_layers - 1)})
        self.arch_params = ArchParameters(
            {'alpha': (num_edges(block_multiplier), len(PRIMITIVES)),
             'beta': (num_layers, NUM_LEVELS, 3)},
            init_scale=arch_init_scale, seed=seed, single_path=single_path)
        self.register_buffer('beta_mask', beta_mask(num_layers), persistent=False)

    @staticmethod
    def _key(layer: int, level: int) -> str:
        return f'{layer}_{level}'

    @staticmethod
    def _prev_prev_level(layer: int, level: int) -> int:
        """Level of the H^{l-2} the cell at (layer, level) takes: the same level
        where layer l-2 has it, else that layer's coarsest (the stem's stride-2
        feature, level -1, for layer 0)."""
        if layer == 0:
            return -1
        return min(level, max(levels_at(layer - 2)))

    # -- architecture ------------------------------------------------------
    def normalized_beta(self) -> torch.Tensor:
        return normalize_beta(self.arch_params.logits['beta'], self.beta_mask)

    def arch_weights(self) -> dict[str, torch.Tensor]:
        """alpha: softmax over ops [edges, 8]; beta: normalised transitions [L, 4, 3]."""
        return dict(alpha=self.arch_params.softmax('alpha'), beta=self.normalized_beta())

    @property
    def arch_op_names(self) -> dict[str, list[str]]:
        """Names of the last dimension of alpha (the ops) and beta (the directions)."""
        return {'alpha': list(PRIMITIVES), 'beta': list(DIRECTION_NAMES)}

    @property
    def arch_row_names(self) -> dict[str, list[str]]:
        """Names of the rows of alpha (the cell's edges, in :func:`edge_index` order)
        and of beta (its [layer, source level] pairs, flattened)."""
        blocks = self.block_multiplier
        inputs = ['H(l-2)', 'H(l-1)', *(f'block {b}' for b in range(blocks))]
        alpha = [f'{inputs[source]} → block {block}'
                 for block in range(blocks) for source in range(block + 2)]
        beta = [f'layer {layer}, from stride {4 * 2 ** level}'
                for layer in range(self.num_layers) for level in range(NUM_LEVELS)]
        return {'alpha': alpha, 'beta': beta}

    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self.arch_params.parameters())

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    # -- forward -----------------------------------------------------------
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        prev_prev_stem, stem = self.stem(images)
        sizes = level_sizes(stem.shape[-2:], NUM_LEVELS)
        alpha, active = self.arch_params.op_weights('alpha')
        active = None if active is None else active.tolist()
        beta = self.normalized_beta()
        prev_prev, prev = {-1: prev_prev_stem}, {0: stem}
        for layer in range(self.num_layers):
            current = {}
            for level in levels_at(layer):
                cell = self.cells[self._key(layer, level)]
                s0 = prev_prev[self._prev_prev_level(layer, level)]
                total = 0
                for source in (level - 1, level, level + 1):
                    if source not in prev:
                        continue
                    options = dict(source_offset=source - level, size=sizes[level],
                                   active=active)
                    out = run_cell(cell, s0, prev[source], alpha, with_cp=self.with_cp,
                                   **options)
                    total = total + beta[layer, source, level - source + 1] * out
                current[level] = total
            prev_prev, prev = prev, current
        logits = 0
        for level, state in prev.items():
            logits = logits + F.interpolate(self.aspp[str(level)](state), size=images.shape[-2:],
                                            mode='bilinear', align_corners=True)
        return logits
