"""The AutoGAN generator skeleton, and the standalone generator of one architecture.

The skeleton (reference sheet 1.2): ``l1`` maps the latent to a
``gf_dim x bottom_width x bottom_width`` map; three cells of constant width
each up-sample by 2; ``to_rgb`` (BN, ReLU, 3x3 conv to RGB, tanh) turns the
last cell run into an image in [-1, 1].
"""
from __future__ import annotations

import os
from typing import Mapping

import torch
from mmengine.registry import MODELS
from torch import nn

from gan.autogan.cell import Cell, CellOptions, CellOutput
from gan.autogan.space import NUM_CELLS, AutoGANSpace, CellArch
from nas_tasks.architectures import resolve_arch
from nas_tasks.errors import ArchError

ARCH_KEY = 'arch_vector'  # the buffer recording a standalone generator's architecture


class GeneratorSkeleton(nn.Module):
    """``l1``, the cells built with ``cell_options`` (one per cell) and ``to_rgb``."""

    def __init__(self, cell_options: list[CellOptions], gf_dim: int, latent_dim: int,
                 bottom_width: int):
        super().__init__()
        self.gf_dim = gf_dim
        self.latent_dim = latent_dim
        self.bottom_width = bottom_width
        self.l1 = nn.Linear(latent_dim, bottom_width ** 2 * gf_dim)
        self.cells = nn.ModuleList(Cell(gf_dim, index, options)
                                   for index, options in enumerate(cell_options, start=1))
        # Shared by every stage: the search scores cell s's output at its resolution.
        self.to_rgb = nn.Sequential(nn.BatchNorm2d(gf_dim), nn.ReLU(),
                                    nn.Conv2d(gf_dim, 3, kernel_size=3, padding=1), nn.Tanh())

    def run_cells(self, z: torch.Tensor, cells: list[CellArch]) -> list[CellOutput]:
        """The outputs of the first ``len(cells)`` cells on the paths ``cells``."""
        h = self.l1(z).view(-1, self.gf_dim, self.bottom_width, self.bottom_width)
        outputs: list[CellOutput] = []
        for module, cell in zip(self.cells, cells):
            skips = {index: output.skip for index, output in enumerate(outputs, start=1)}
            outputs.append(module(h, skips, cell))
            h = outputs[-1].out
        return outputs

    def generate(self, z: torch.Tensor, cells: list[CellArch]) -> torch.Tensor:
        return self.to_rgb(self.run_cells(z, cells)[-1].out)


@MODELS.register_module()
class AutoGANGenerator(GeneratorSkeleton):
    """The generator of one whole architecture, holding only its ops.

    Args:
        arch: a preset name (``'autogan_cifar10_a'``), an arch JSON path, a
            document or an arch dict of the ``autogan`` space.
        gf_dim: the width of every cell (256 for the published models, 128 in the search).
        latent_dim: the length of the noise ``z``.
        bottom_width: the side of the first map (4 for 32 px images, 6 for 48 px).

    Its parameter names are those of the same path in
    :class:`~gan.autogan.shared_generator.AutoGANSharedGenerator`, so
    ``load_state_dict(shared.subnet_state_dict(arch))`` inherits the shared weights.
    Its state dict also records the architecture (the buffer ``arch_vector``,
    the official vector), and loading the weights of another architecture fails
    with one line: mmengine loads checkpoints non-strictly, and a test of the
    wrong generator would otherwise score half-initialised weights.
    """

    def __init__(self, arch: str | os.PathLike | Mapping, gf_dim: int = 256, latent_dim: int = 128,
                 bottom_width: int = 4):
        space = AutoGANSpace()
        self.arch = resolve_arch(arch, space)
        if not space.is_complete(self.arch):
            raise ArchError(f'a standalone AutoGAN generator needs all {NUM_CELLS} cells, but the '
                            f'arch decides {space.stage_of(self.arch) + 1}: {space.canonical(self.arch)}')
        self.cell_archs = space.cells(self.arch)
        super().__init__([CellOptions.only(cell) for cell in self.cell_archs],
                         gf_dim, latent_dim, bottom_width)
        self.register_buffer(ARCH_KEY, arch_vector(self.arch))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generate(z, self.cell_archs)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        theirs = state_dict.get(prefix + ARCH_KEY)
        mine = AutoGANSpace().to_vector(self.arch)
        if theirs is not None and theirs.tolist() != mine:
            raise ArchError(f"these weights are of the generator {' '.join(map(str, theirs.tolist()))}, "
                            f"but the config builds {' '.join(map(str, mine))}; set model.generator.arch "
                            "to the architecture they were trained for (e.g. the search's best_arch.json)")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def arch_vector(arch) -> torch.Tensor:
    """The official vector of ``arch``, as the generator's state dict records it."""
    return torch.tensor(AutoGANSpace().to_vector(arch), dtype=torch.long, device='cpu')
