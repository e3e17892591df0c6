"""The DetNAS search space: one of four ShuffleNetV2-style blocks per layer.

:class:`DetNASSpace` is defined (and registered in ``SPACES``) with the
architecture format in ``backbones/detnas_presets.py``, which the backbones
check archs with; here it gets its cost model.
"""
from __future__ import annotations

from backbones.detnas_presets import DetNASSpace
from backbones.resources import DetNASCostTable
from nas_tasks.registry import COST_MODELS

__all__ = ['DetNASSpace']

COST_MODELS.register_module(module=DetNASCostTable)
