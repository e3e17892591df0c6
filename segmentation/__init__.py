"""Segmentation tasks (mmseg glue). ``segmentation.cityscapes``: labels and label conversion."""
