"""Segmentation tasks (mmseg glue): Auto-DeepLab search; ``segmentation.cityscapes`` labels."""
from segmentation import auto_deeplab  # noqa: F401  (registers the search task)
