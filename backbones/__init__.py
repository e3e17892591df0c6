"""NAS backbones. Importing this package registers them in mmdet's MODELS
(Auto-DeepLab's and FNA's in mmseg's too). The FNA export adapter (and ONNX) is
imported only when tools/export.py looks one up."""
from nas_tasks.export.adapter import task_export_adapters

# FNA's adapter, found in backbones.fna.export when needed.
EXPORT_ADAPTERS = task_export_adapters('backbones.fna.export')

from . import classification  # noqa: F401  (registers the pre-training components)
from .auto_deeplab import AutoDeepLabBackbone, AutoDeepLabSearchNet
from .detnas import DetNASBackbone, DetNASSuperNet
from .fna import FNABackbone, FNASuperNet
from .resources import DetNASCostTable

__all__ = ['DetNASBackbone', 'DetNASSuperNet', 'DetNASCostTable', 'AutoDeepLabBackbone',
           'AutoDeepLabSearchNet', 'FNABackbone', 'FNASuperNet']
