"""NAS backbones. Importing this package registers them in mmdet's MODELS
(Auto-DeepLab's in mmseg's too)."""
from . import classification  # noqa: F401  (registers the pre-training components)
from .auto_deeplab import AutoDeepLabBackbone, AutoDeepLabSearchNet
from .detnas import DetNASBackbone, DetNASSuperNet
from .fna import FNABackbone, FNASuperNet
from .resources import DetNASCostTable

__all__ = ['DetNASBackbone', 'DetNASSuperNet', 'DetNASCostTable', 'AutoDeepLabBackbone',
           'AutoDeepLabSearchNet', 'FNABackbone', 'FNASuperNet']
