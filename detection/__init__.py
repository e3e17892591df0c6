"""Detection tasks: DetNAS (one-shot backbone search) and the shared mmdet glue.

Importing the package registers mmdet's modules (the core registers no task
library) and this package's components; its export adapters (and ONNX) are
imported only when tools/export.py looks one up.
"""
from mmdet.utils import register_all_modules as _register_mmdet_modules

from nas_tasks.export.adapter import task_export_adapters

# The registry scope detection's configs, models and datasets are built in.
DEFAULT_SCOPE = 'mmdet'
# DetNAS's and NAS-FPN's adapters, found in detection.export when needed.
EXPORT_ADAPTERS = task_export_adapters('detection.export')
# No global default scope: a run takes its config's (tools/search.py, train.py, test.py).
_register_mmdet_modules(init_default_scope=False)

from detection import detnas, metrics, one_shot  # noqa: F401,E402  (registers components)
from detection import nas_fpn, proxy  # noqa: F401,E402  (NAS-FPN space, neck, proxy estimator)
from detection import fna  # noqa: F401,E402  (FNA detection search)
from detection import toy_data  # noqa: F401,E402  (toy COCO and ImageNet layouts, COCO data hint)
from detection import diagnose  # noqa: F401,E402  (standalone training and ablations for tools/diagnose.py)
