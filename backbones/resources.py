"""FLOPs and parameter counts of DetNAS architectures.

In a DetNAS backbone every layer's input shape is fixed whatever the choices
are, so an architecture's cost is the stem's plus the sum of its chosen
blocks'. :class:`DetNASCostTable` measures each (layer, choice) block once and
then prices any architecture by summing.

FLOPs follow the official DetNAS search (megvii-model/DetNAS,
``distributed_arch_search/search.py`` with ``maskrcnn_benchmark/utils/
complexity.py``): the detection backbone alone (the stem and the choice
blocks; it has no final 1x1 conv and no classifier), one 224x224 image, and
only the multiply-adds of the convolutions (bias excluded), one multiply-add
counting as one FLOP. BN, ReLU, channel shuffle and concatenation count
nothing. They are counted by torch's ``FlopCounterMode`` (convolutions and
matrix products), see :func:`count_multiply_adds`: the ``flops_convention``
``macs_conv_matmul`` (FNA's MAdds too). Parameters are all of the backbone's
parameters, by mmengine's ``parameter_count``.

:func:`measure` is the general-purpose counter of the other tasks: mmengine's
``FlopAnalyzer``, which also counts BN and upsampling, the ``flops_convention``
``flops_mmengine``. Needs neither mmcv nor mmdet.
"""
from typing import Mapping

import torch
from mmengine.analysis import FlopAnalyzer, parameter_count
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nas_tasks.result import MACS_CONV_MATMUL

from .detnas_presets import VARIANTS, arch_to_choices, check_variant, layer_specs
from .shufflenet_blocks import CHOICE_NAMES, ShuffleNetV2Block, build_stem

# The input the official DetNAS search measures its FLOPs limits at.
DETNAS_FLOPS_INPUT_SIZE = (224, 224)


def measure(module: nn.Module, inputs: torch.Tensor) -> dict[str, float]:
    """FLOPs (eval mode; ``flops_mmengine``) and parameters of ``module`` on ``inputs``, by
    mmengine."""
    module.eval()
    analyzer = FlopAnalyzer(module, (inputs,))
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return {'flops': float(analyzer.total()), 'params': float(parameter_count(module)[''])}


def count_multiply_adds(module: nn.Module, inputs: torch.Tensor) -> float:
    """Multiply-adds of the convolutions and matrix products (linear layers) of one
    forward of ``module`` (eval mode), by torch's ``FlopCounterMode``; nothing else counts."""
    module.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(inputs)
    return counter.get_total_flops() / 2  # torch counts a multiply-add as two FLOPs


def _detnas_costs(module: nn.Module, inputs: torch.Tensor) -> dict[str, float]:
    return {'flops': count_multiply_adds(module, inputs),
            'params': float(parameter_count(module)[''])}


class DetNASCostTable:
    """Per-block costs of one DetNAS variant at one input size, counted as the
    official DetNAS search does (see the module docstring): its ``flops`` are
    ``MACS_CONV_MATMUL``.

    Args:
        variant: 'small', 'large' or 'xlarge'.
        input_size: (height, width) of the image fed to the backbone; the
            paper's FLOPs classes (300M, 1.3G, 3.8G) are at 224x224.
    """

    flops_convention = MACS_CONV_MATMUL

    def __init__(self, variant: str, input_size: tuple[int, int] = DETNAS_FLOPS_INPUT_SIZE):
        check_variant(variant)
        self.variant = variant
        self.input_size = tuple(input_size)
        with torch.no_grad():
            x = torch.zeros(1, 3, *self.input_size)
            stem = build_stem(VARIANTS[variant]['first_channels'])
            self.stem_cost = _detnas_costs(stem, x)
            x = stem(x)
            # block_costs[layer][choice] = {'flops': ..., 'params': ...}
            self.block_costs: list[dict[str, dict[str, float]]] = []
            for spec in layer_specs(variant):
                blocks = {choice: ShuffleNetV2Block(choice, *spec) for choice in CHOICE_NAMES}
                self.block_costs.append(
                    {choice: _detnas_costs(block, x) for choice, block in blocks.items()})
                x = blocks[CHOICE_NAMES[0]](x)  # every choice gives the same output shape

    def costs(self, arch: Mapping[str, str]) -> dict[str, float]:
        """``{'flops': ..., 'params': ...}`` of the backbone with ``arch``."""
        choices = arch_to_choices(arch, self.variant)
        total = dict(self.stem_cost)
        for layer_costs, choice in zip(self.block_costs, choices):
            for name, value in layer_costs[choice].items():
                total[name] += value
        return total
