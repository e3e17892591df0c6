"""Segmentation tasks (mmseg glue): Auto-DeepLab search; ``segmentation.cityscapes`` labels.

Importing the package registers mmseg's modules (the core registers no task
library) and this package's components; its export adapter (and ONNX) is
imported only when tools/export.py looks one up.
"""
from mmseg.utils import register_all_modules as _register_mmseg_modules

from nas_tasks.export.adapter import task_export_adapters

# The registry scope segmentation's configs, models and datasets are built in.
DEFAULT_SCOPE = 'mmseg'
# Auto-DeepLab's adapter, found in segmentation.export when needed.
EXPORT_ADAPTERS = task_export_adapters('segmentation.export')
# No global default scope: a run takes its config's (tools/search.py, train.py, test.py).
_register_mmseg_modules(init_default_scope=False)

from segmentation import auto_deeplab  # noqa: F401,E402  (registers the search task)
from segmentation import fna  # noqa: F401,E402  (FNA segmentation search)
from segmentation import toy_data  # noqa: F401,E402  (toy Cityscapes layout, Cityscapes data hint)
