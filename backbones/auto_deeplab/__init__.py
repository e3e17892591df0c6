"""Auto-DeepLab (Liu et al., CVPR 2019): search network, decoding, derived backbone.

Importing this package registers :class:`AutoDeepLabBackbone` in mmdet's and
mmseg's MODELS.
"""
from .arch import (AUTO_DEEPLAB_SPACE, PRESETS, SPACE_NAME, SPACE_VERSION, save_arch_document,
                   validate_arch)
from .decode import decode_genotype, viterbi_path
from .derived import AutoDeepLabBackbone
from .ops import PRIMITIVES
from .search_network import AutoDeepLabSearchNet

__all__ = [
    'AUTO_DEEPLAB_SPACE', 'PRIMITIVES', 'PRESETS', 'SPACE_NAME', 'SPACE_VERSION', 'save_arch_document',
    'validate_arch', 'decode_genotype', 'viterbi_path', 'AutoDeepLabBackbone',
    'AutoDeepLabSearchNet',
]
