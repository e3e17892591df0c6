"""The DetNAS search space: one of four ShuffleNetV2-style blocks per layer."""
from __future__ import annotations

from backbones.detnas_presets import SPACE_VERSION, layer_keys, space_name
from backbones.resources import DetNASCostTable
from backbones.shufflenet_blocks import CHOICE_NAMES
from nas_tasks.registry import COST_MODELS, SPACES
from nas_tasks.space import CategoricalSpace


@SPACES.register_module()
class DetNASSpace(CategoricalSpace):
    """20 (small) or 40 (large) layers, each choosing shuffle 3x3/5x5/7x7 or xception 3x3."""

    def __init__(self, variant: str = 'small'):
        super().__init__({key: list(CHOICE_NAMES) for key in layer_keys(variant)},
                         name=space_name(variant), version=SPACE_VERSION)
        self.variant = variant


COST_MODELS.register_module(module=DetNASCostTable)
