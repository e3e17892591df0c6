"""FLOPs and parameter counts of DetNAS architectures, via mmengine's analyzer.

In a DetNAS backbone every layer's input shape is fixed whatever the choices
are, so an architecture's cost is the stem's plus the sum of its chosen
blocks'. :class:`DetNASCostTable` measures each (layer, choice) block once with
mmengine's ``FlopAnalyzer`` / ``parameter_count`` and then prices any
architecture by summing. FLOPs follow mmengine's (fvcore's) convention: one
multiply-add counts as one FLOP, BN counted in eval mode, batch size 1.
Needs neither mmcv nor mmdet.
"""
from typing import Mapping

import torch
from mmengine.analysis import FlopAnalyzer, parameter_count
from torch import nn

from .detnas_presets import VARIANTS, arch_to_choices, check_variant, layer_specs
from .shufflenet_blocks import CHOICE_NAMES, ShuffleNetV2Block, build_stem


def measure(module: nn.Module, inputs: torch.Tensor) -> dict[str, float]:
    """FLOPs (eval mode) and parameters of ``module`` on ``inputs``, by mmengine."""
    module.eval()
    analyzer = FlopAnalyzer(module, (inputs,))
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return {'flops': float(analyzer.total()), 'params': float(parameter_count(module)[''])}


class DetNASCostTable:
    """Per-block costs of one DetNAS variant at one input size.

    Args:
        variant: 'small', 'large' or 'xlarge'.
        input_size: (height, width) of the image fed to the backbone.
    """

    def __init__(self, variant: str, input_size: tuple[int, int] = (800, 1333)):
        check_variant(variant)
        self.variant = variant
        self.input_size = tuple(input_size)
        with torch.no_grad():
            x = torch.zeros(1, 3, *self.input_size)
            stem = build_stem(VARIANTS[variant]['first_channels'])
            self.stem_cost = measure(stem, x)
            x = stem(x)
            # block_costs[layer][choice] = {'flops': ..., 'params': ...}
            self.block_costs: list[dict[str, dict[str, float]]] = []
            for spec in layer_specs(variant):
                blocks = {choice: ShuffleNetV2Block(choice, *spec) for choice in CHOICE_NAMES}
                self.block_costs.append(
                    {choice: measure(block, x) for choice, block in blocks.items()})
                x = blocks[CHOICE_NAMES[0]](x)  # every choice gives the same output shape

    def costs(self, arch: Mapping[str, str]) -> dict[str, float]:
        """``{'flops': ..., 'params': ...}`` of the backbone with ``arch``."""
        choices = arch_to_choices(arch, self.variant)
        total = dict(self.stem_cost)
        for layer_costs, choice in zip(self.block_costs, choices):
            for name, value in layer_costs[choice].items():
                total[name] += value
        return total
