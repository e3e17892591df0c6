"""Detection tasks: DetNAS (one-shot backbone search) and the shared mmdet glue."""
from detection import detnas, metrics, one_shot  # noqa: F401  (registers components)
from detection import nas_fpn, proxy  # noqa: F401,E402  (NAS-FPN space, neck, proxy estimator)
from detection import fna  # noqa: F401,E402  (FNA detection search)
from detection import toy_data  # noqa: F401  (toy COCO and ImageNet layouts, COCO data hint)
from detection import diagnose  # noqa: F401,E402  (standalone training and ablations for tools/diagnose.py)
from detection import export  # noqa: F401,E402  (DetNAS and NAS-FPN export adapters)
