"""Segmentation tasks (mmseg glue): Auto-DeepLab search; ``segmentation.cityscapes`` labels."""
from segmentation import auto_deeplab  # noqa: F401  (registers the search task)
from segmentation import fna  # noqa: F401  (FNA segmentation search)
from segmentation import toy_data  # noqa: F401  (toy Cityscapes layout, Cityscapes data hint)
from segmentation import export  # noqa: F401,E402  (Auto-DeepLab export adapter)
