"""One AutoGAN up-sampling cell, holding the modules of some or all of its options.

The shared generator builds each cell with every option (one-shot weight
sharing); a standalone generator builds it with the options of one
architecture only. Both name a module the same way, by the option it serves
(``conv1.pre.conv.weight``, ``skip_in_ops.cell1.weight``), so the weights of
one path slice out of the shared generator by name.

What a cell computes is the official search cell's (``Cell.forward`` of
``models_search/building_blocks_search.py``, see the reference sheet 1.3):

1. ``h = conv1(x)``, the block that up-samples;
2. ``h = h + skip_in_op(resize(ft))`` for each enabled skip source;
3. the skip feature the cell exports is this ``h``, *after* the additions;
4. ``out = conv2(h)``, plus ``c_sc(up(x))`` with the in-cell shortcut.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from gan.autogan.space import CONV_TYPES, NORM_TYPES, UP_TYPES, CellArch


class CellOptions(NamedTuple):
    """The options a cell has modules for."""
    convs: tuple[str, ...]
    norms: tuple[str | None, ...]
    ups: tuple[str, ...]
    shortcut: bool
    skip_from: tuple[int, ...]

    @classmethod
    def every(cls, cell: int) -> CellOptions:
        """All options of cell ``cell`` (1-based): what the shared generator holds."""
        return cls(tuple(CONV_TYPES), tuple(NORM_TYPES), tuple(UP_TYPES), True, tuple(range(1, cell)))

    @classmethod
    def only(cls, cell: CellArch) -> CellOptions:
        """The options one architecture's cell uses."""
        return cls((cell.conv,), (cell.norm,), (cell.up,), cell.shortcut, cell.skip_from)


class CellOutput(NamedTuple):
    skip: torch.Tensor  # what later cells receive as this cell's skip feature
    out: torch.Tensor   # what the next cell (or to_rgb) takes


def _norm_key(norm: str | None) -> str:
    return 'none' if norm is None else norm


def _make_norm(norm: str | None, channels: int) -> nn.Module:
    if norm == 'bn':
        return nn.BatchNorm2d(channels)
    if norm == 'in':
        return nn.InstanceNorm2d(channels)  # no affine parameters, as the official code
    return nn.Identity()


def _upsample_x2(x: torch.Tensor, up: str, deconv: nn.Module | None) -> torch.Tensor:
    """Up-sampling by 2 with ``up``: a transposed conv (``deconv``) or interpolation."""
    if up == 'deconv':
        return deconv(x)
    return F.interpolate(x, scale_factor=2, mode=up)


def _deconv_x2(channels: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(channels, channels, kernel_size=2, stride=2)


class GenBlock(nn.Module):
    """A 3x3 conv block, pre- (norm, ReLU, [up], conv) or post-activation
    ([up], conv, norm, ReLU), with a norm module per norm option and, when it
    up-samples and may deconvolve, its own transposed conv."""

    def __init__(self, channels: int, conv_type: str, norms: Sequence[str | None],
                 ups: Sequence[str], upsample: bool):
        super().__init__()
        self.conv_type = conv_type
        self.upsample = upsample
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.norms = nn.ModuleDict({_norm_key(norm): _make_norm(norm, channels) for norm in norms})
        if upsample and 'deconv' in ups:
            self.deconv = _deconv_x2(channels)

    def forward(self, x: torch.Tensor, norm: str | None, up: str) -> torch.Tensor:
        norm_relu = self.norms[_norm_key(norm)]
        if self.conv_type == 'pre':
            return self.conv(self._up(F.relu(norm_relu(x)), up))
        return F.relu(norm_relu(self.conv(self._up(x, up))))

    def _up(self, x: torch.Tensor, up: str) -> torch.Tensor:
        return _upsample_x2(x, up, getattr(self, 'deconv', None)) if self.upsample else x


class Cell(nn.Module):
    """Cell ``index`` (1-based) of width ``channels`` with the modules of ``options``."""

    def __init__(self, channels: int, index: int, options: CellOptions):
        super().__init__()
        self.index = index
        # Separate weights (conv, norm, deconv) per pre/post variant, as the official cell.
        self.conv1 = nn.ModuleDict({conv: GenBlock(channels, conv, options.norms, options.ups, True)
                                    for conv in options.convs})
        self.conv2 = nn.ModuleDict({conv: GenBlock(channels, conv, options.norms, options.ups, False)
                                    for conv in options.convs})
        deconv = 'deconv' in options.ups
        if options.shortcut:
            self.c_sc = nn.Conv2d(channels, channels, kernel_size=1)
            if deconv:
                self.deconv_sc = _deconv_x2(channels)
        self.skip_in_ops = nn.ModuleDict({f'cell{source}': nn.Conv2d(channels, channels, kernel_size=1)
                                          for source in options.skip_from})
        if deconv:
            # Skip features are deconvolved by scale, not by source: x2 from the
            # previous cell, x4 (two transposed convs) from the one before.
            scales = sorted({self._scale(source) for source in options.skip_from})
            self.skip_deconvs = nn.ModuleDict({f'x{scale}': self._deconv_by(scale, channels)
                                               for scale in scales})

    def forward(self, x: torch.Tensor, skip_features: dict[int, torch.Tensor],
                cell: CellArch) -> CellOutput:
        """Runs the path ``cell``; ``skip_features`` maps an earlier cell to its skip feature."""
        h = self.conv1[cell.conv](x, cell.norm, cell.up)
        for source in cell.skip_from:
            resized = self._resize_skip(skip_features[source], source, cell.up, h.shape[-2:])
            # Out of place: the official in-place add breaks autograd on current
            # torch. The exported skip feature is taken after the additions, as
            # the official in-place aliasing makes it.
            h = h + self.skip_in_ops[f'cell{source}'](resized)
        out = self.conv2[cell.conv](h, cell.norm, cell.up)
        if cell.shortcut:
            out = out + self.c_sc(_upsample_x2(x, cell.up, getattr(self, 'deconv_sc', None)))
        return CellOutput(skip=h, out=out)

    def _scale(self, source: int) -> int:
        return 2 ** (self.index - source)

    @staticmethod
    def _deconv_by(scale: int, channels: int) -> nn.Module:
        return nn.Sequential(*(_deconv_x2(channels) for _ in range(scale.bit_length() - 1)))

    def _resize_skip(self, feature: torch.Tensor, source: int, up: str,
                     size: torch.Size) -> torch.Tensor:
        if up == 'deconv':
            return self.skip_deconvs[f'x{self._scale(source)}'](feature)
        return F.interpolate(feature, size=tuple(size), mode=up)
