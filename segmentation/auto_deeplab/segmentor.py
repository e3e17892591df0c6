"""The derived Auto-DeepLab network in mmseg: backbone + DeepLabv3+ head wired from the arch.

The head's input channels and atrous rates depend on where the decoded path
ends (output stride 4 to 32) and on F, so a config that names a searched
``best_arch.json`` cannot state them once for all archs. This segmentor
reads the backbone's arch and fills them in, so a config only chooses the
head's own widths.
"""
from __future__ import annotations

from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS

from backbones.auto_deeplab.derived import feature_layout, read_derived_arch
from nas_tasks.errors import NasError

# DeepLab's atrous rates are (6, 12, 18) at output stride 16: 96 / s, 192 / s, 288 / s.
RATE_NUMERATORS = (96, 192, 288)


def atrous_rates(output_stride: int) -> tuple[int, ...]:
    """The ASPP dilations of DeepLabv3(+) at ``output_stride``, a 1x1 branch first."""
    return (1, *(max(numerator // output_stride, 1) for numerator in RATE_NUMERATORS))


@MODELS.register_module()
class AutoDeepLabSegmentor(EncoderDecoder):
    """mmseg's EncoderDecoder whose decode head (AutoDeepLabHead or DepthwiseSeparableASPPHead)
    gets ``in_channels``, ``in_index``, ``c1_in_channels`` and ``dilations``
    from the AutoDeepLabBackbone's two output features: the low-level
    stride-4 feature for the decoder, the last cell's for ASPP."""

    def __init__(self, backbone: dict, decode_head: dict, **kwargs):
        if backbone.get('type') != 'AutoDeepLabBackbone':
            raise NasError("AutoDeepLabSegmentor needs backbone type 'AutoDeepLabBackbone', got "
                           f"'{backbone.get('type')}'")
        super().__init__(backbone=backbone, decode_head=wire_decode_head(backbone, decode_head),
                         **kwargs)


def wire_decode_head(backbone: dict, decode_head: dict) -> dict:
    """``decode_head`` with the settings that follow from the AutoDeepLabBackbone's
    arch (also what a plain EncoderDecoder config of an exported model states)."""
    arch = read_derived_arch(backbone['arch'], backbone.get('filter_multiplier'))
    layout = feature_layout(arch, backbone.get('out_indices'))
    if len(layout.out_indices) != 2:
        raise NasError('AutoDeepLabSegmentor needs out_indices = (low-level feature, last '
                       f'feature), got {layout.out_indices}')
    (low_channels, high_channels), high_stride = layout.out_channels, layout.out_strides[1]
    return dict(decode_head, in_channels=high_channels, in_index=1,
                c1_in_channels=low_channels, dilations=atrous_rates(high_stride))
