"""Auto-DeepLab: hierarchical differentiable search of a segmentation network."""
from segmentation.auto_deeplab import head, search, segmentor  # noqa: F401  (registers components)
from segmentation.auto_deeplab import diagnose  # noqa: F401  (random baseline for tools/diagnose.py)
