"""FNA's DeepLabv3 head: ASPP with depthwise-separable atrous branches and a 1x1 projection.

The official FNA network (JaminFong/FNA, ``fna_seg/.../head/ASPP_Sep.py`` and
``network.py``) puts this head on the 320-channel output of the adapted
MobileNetV2 at output stride 16:

- a 1x1 conv branch, three atrous branches (rates 6, 12, 18) each a
  depthwise 3x3 conv + BN + ReLU then a pointwise 1x1 conv + BN + ReLU, and
  image pooling (global average, 1x1 conv + BN + ReLU, upsampled), all to
  256 channels;
- a **1x1** conv + BN + ReLU over their concatenation, Dropout2d(0.1), and a
  1x1 classifier with bias.

mmseg's ``ASPPHead`` is this with full 3x3 atrous branches and a 3x3
bottleneck (about 3x the network's parameters and 2.5x its multiply-adds
with the FNA backbone), and its ``DepthwiseSeparableASPPHead`` is DeepLabv3+
(a 3x3 bottleneck, a low-level decoder and two separable 3x3 convs after).
This head is ``ASPPHead`` with mmseg's own separable branches
(``DepthwiseSeparableASPPModule``) and a 1x1 bottleneck; ``BaseDecodeHead``
supplies the dropout and the classifier.
"""
from mmcv.cnn import ConvModule
from mmseg.models.decode_heads.aspp_head import ASPPHead
from mmseg.models.decode_heads.sep_aspp_head import DepthwiseSeparableASPPModule
from mmseg.registry import MODELS


@MODELS.register_module()
class SeparableASPPHead(ASPPHead):
    """DeepLabv3's ASPP as FNA builds it: separable atrous branches, 1x1 projection.

    Args:
        dilations: the ASPP rates; a rate of 1 is a 1x1 conv branch, the others
            depthwise-separable 3x3 convs (FNA at output stride 16: 1, 6, 12, 18).
        **kwargs: ``BaseDecodeHead``'s (in_channels, channels, num_classes,
            dropout_ratio, norm_cfg, ...).
    """

    def __init__(self, dilations=(1, 6, 12, 18), **kwargs):
        super().__init__(dilations=dilations, **kwargs)
        self.aspp_modules = DepthwiseSeparableASPPModule(
            dilations=self.dilations, in_channels=self.in_channels, channels=self.channels,
            conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg, act_cfg=self.act_cfg)
        self.bottleneck = ConvModule(
            (len(self.dilations) + 1) * self.channels, self.channels, 1,
            conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg, act_cfg=self.act_cfg)
