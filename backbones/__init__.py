"""NAS backbones. Importing this package registers them in mmdet's MODELS."""
from .detnas import DetNASBackbone, DetNASSuperNet
from .resources import DetNASCostTable

__all__ = ['DetNASBackbone', 'DetNASSuperNet', 'DetNASCostTable']
