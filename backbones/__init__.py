"""NAS backbones. Importing this package registers them in mmdet's MODELS."""
from . import classification  # noqa: F401  (registers the pre-training components)
from .detnas import DetNASBackbone, DetNASSuperNet
from .resources import DetNASCostTable

__all__ = ['DetNASBackbone', 'DetNASSuperNet', 'DetNASCostTable']
