"""The DeepLabv3+ head of the published Auto-DeepLab networks.

The paper's parameter counts (10.15M, 21.62M, 44.42M for Auto-DeepLab-S, -M,
-L, Table 3) are what the official TensorFlow DeepLab builds on the
``hnasnet`` backbone with plain convolutions: ASPP with full 3x3 atrous
branches (``aspp_with_separable_conv=False``), a 1x1 projection of the
concatenated branches (``concat_projection``), and a decoder of two full 3x3
convolutions (``decoder_use_separable_conv=False``). Fitting a F^2 + b F + c
to the three published totals gives per-F and constant terms that match
these layers and not mmseg's DepthwiseSeparableASPPHead (separable branches
and decoder, a 3x3 projection); docs/auto_deeplab.md has the per-module
count.

It is mmseg's DepthwiseSeparableASPPHead (its forward and its low-level
1x1 reduction) with those three layers in place of the separable ones.
"""
from __future__ import annotations

from mmcv.cnn import ConvModule
from mmseg.models.decode_heads.aspp_head import ASPPModule
from mmseg.models.decode_heads.sep_aspp_head import DepthwiseSeparableASPPHead
from mmseg.registry import MODELS
from torch import nn


@MODELS.register_module()
class AutoDeepLabHead(DepthwiseSeparableASPPHead):
    """DeepLabv3+ as the official Auto-DeepLab models count it (full 3x3 atrous
    branches, 1x1 projection, two full 3x3 decoder convs); the arguments are
    DepthwiseSeparableASPPHead's."""

    def __init__(self, c1_in_channels: int, c1_channels: int, **kwargs):
        super().__init__(c1_in_channels=c1_in_channels, c1_channels=c1_channels, **kwargs)
        layer = dict(conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg, act_cfg=self.act_cfg)
        self.aspp_modules = ASPPModule(dilations=self.dilations, in_channels=self.in_channels,
                                       channels=self.channels, **layer)
        self.bottleneck = ConvModule((len(self.dilations) + 1) * self.channels, self.channels, 1,
                                     **layer)
        self.sep_bottleneck = nn.Sequential(
            ConvModule(self.channels + c1_channels, self.channels, 3, padding=1, **layer),
            ConvModule(self.channels, self.channels, 3, padding=1, **layer))
