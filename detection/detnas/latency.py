"""Latency of DetNAS backbones on the current device, from a per-block table.

Every layer's input shape is the same whatever is chosen, so the stem and
each (layer, choice) block are timed in place, on the input that layer gets
(as :class:`~backbones.resources.DetNASCostTable` counts their FLOPs), in
passes over all of them; a backbone's latency is the stem's entry plus its
chosen blocks'. The sums are
checked against whole :class:`~backbones.detnas.DetNASBackbone` networks.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Mapping

import torch

from backbones.detnas import DetNASBackbone
from backbones.detnas_presets import VARIANTS, DetNASSpace, arch_to_choices, layer_keys, layer_specs
from backbones.shufflenet_blocks import CHOICE_NAMES, ShuffleNetV2Block, build_stem
from nas_tasks.latency import Forward, PerChoiceLatencyTable
from nas_tasks.registry import COST_MODELS

STEM = 'stem'


@COST_MODELS.register_module()
class DetNASLatencyTable(PerChoiceLatencyTable):
    """The backbone's latency (stem and chosen blocks, as the FLOPs) in ms.

    Names a table entry ``'stem'`` or ``'<layer key>/<choice>'``
    (``'layer07/xception3x3'``). Settings: see
    :class:`~nas_tasks.latency.PerChoiceLatencyTable`; ``input_size`` is the
    detector's input (height, width), e.g. ``(800, 1333)`` on COCO.
    """

    def __init__(self, space: DetNASSpace, input_size, table: str | Path | None = None,
                 batch: int = 1, repeats: int = 10, warmup: int = 2, check_networks: int = 5,
                 seed: int = 0, clock: str = 'wall', device: str | None = None):
        self.variant = space.variant
        self.network = f'detnas-{self.variant}-backbone'
        super().__init__(space, input_size, table, batch, repeats, warmup, check_networks, seed,
                         clock, device)

    def parts(self) -> Iterator[tuple[str, Forward, torch.Tensor]]:
        x = self.zeros()
        stem = self.place(build_stem(VARIANTS[self.variant]['first_channels']))
        yield STEM, stem, x
        with torch.no_grad():
            x = stem(x)
        for key, spec in zip(layer_keys(self.variant), layer_specs(self.variant)):
            blocks = {choice: self.place(ShuffleNetV2Block(choice, *spec)) for choice in CHOICE_NAMES}
            for choice, block in blocks.items():
                yield f'{key}/{choice}', block, x
            with torch.no_grad():
                x = blocks[CHOICE_NAMES[0]](x)  # every choice gives the same output shape

    def entry_names(self, arch: Mapping[str, str]) -> list[str]:
        choices = arch_to_choices(arch, self.variant)
        return [STEM, *(f'{key}/{choice}' for key, choice in zip(layer_keys(self.variant), choices))]

    def whole_network(self, arch: Mapping[str, str]) -> tuple[Forward, torch.Tensor]:
        return self.place(DetNASBackbone(dict(arch), self.variant)), self.zeros()
