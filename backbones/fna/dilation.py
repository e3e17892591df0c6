"""Output stride below 32 the way the official FNA code dilates: whole stages.

When a stage's stride would take the network past ``output_stride``, its
stride becomes dilation. timm's EfficientNet builder (as TF-slim's DeepLab
MobileNetV2) gives that stage's **first** block the old dilation and only the
blocks after it the new one; the official FNA segmentation network
(JaminFong/FNA ``fna_seg/.../backbone/derive_blocks.py``) multiplies the rate
before building the stage, so every block of it, the first included, gets the
new dilation (at output stride 16, MobileNetV2's 160-channel stage is dilated
2 throughout). :func:`dilate_whole_stages` moves a timm-built network to the
official rule. Dilation changes no parameter shape, so weights and their
remapping are unaffected; multiply-adds are unchanged too.
"""
from __future__ import annotations

from typing import Sequence

from timm.layers import get_padding
from timm.layers.conv2d_same import Conv2dSame
from torch import nn

from nas_tasks.errors import NasError

from .block_strings import BlockString

# timm's builder starts counting the stride after the stem, which always has stride 2.
STEM_STRIDE = 2
# The attribute of each timm block type that holds the convolution timm dilates.
DILATED_CONVS = ('conv_dw', 'conv_exp', 'conv')


def stage_dilations(arch_def: Sequence[Sequence[str]], output_stride: int) -> list[int]:
    """The dilation of every block of each stage, as the official code gives it."""
    stride, dilation, dilations = STEM_STRIDE, 1, []
    for stage in arch_def:
        stage_stride = BlockString.parse(stage[0]).stride
        if stride * stage_stride > output_stride:
            dilation *= stage_stride
        else:
            stride *= stage_stride
        dilations.append(dilation)
    return dilations


def dilate_whole_stages(model: nn.Module, arch_def: Sequence[Sequence[str]],
                        output_stride: int) -> None:
    """Give every block of ``model.blocks`` (a timm EfficientNet/MobileNetV3, or its
    Features class, built from ``arch_def`` at ``output_stride``) its stage's dilation."""
    for stage, dilation in zip(model.blocks, stage_dilations(arch_def, output_stride)):
        for block in stage:
            conv = _dilated_conv(block)
            if conv is not None and conv.dilation != (dilation, dilation):
                _set_dilation(conv, dilation)


def _dilated_conv(block: nn.Module) -> nn.Conv2d | None:
    for name in DILATED_CONVS:
        conv = getattr(block, name, None)
        if isinstance(conv, nn.Conv2d):
            return conv if max(conv.kernel_size) > 1 else None
    raise NasError(f'cannot dilate a timm {type(block).__name__} block for an output stride '
                   f'below 32: it has none of {DILATED_CONVS}; use output_stride=32')


def _set_dilation(conv: nn.Conv2d, dilation: int) -> None:
    if not isinstance(conv, Conv2dSame):  # Conv2dSame pads in forward, from its dilation
        built = tuple(get_padding(k, s, d) for k, s, d in
                      zip(conv.kernel_size, conv.stride, conv.dilation))
        if tuple(conv.padding) != built:
            raise NasError(f'cannot dilate a {conv.kernel_size} convolution padded '
                           f'{conv.padding}: FNA dilates only symmetrically padded ones')
        conv.padding = tuple(get_padding(k, s, dilation)
                             for k, s in zip(conv.kernel_size, conv.stride))
    conv.dilation = (dilation, dilation)
