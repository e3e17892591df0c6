"""The shared (one-shot) AutoGAN generator: every option of every cell at once.

:meth:`AutoGANSharedGenerator.set_arch` selects a path, a whole architecture or a
stage prefix; with a prefix of ``s + 1`` cells the generator runs those cells
only and its images come from the shared ``to_rgb`` at ``bottom_width * 2**(s+1)``
px (8, 16 or 32 at CIFAR-10 size), as the stages of the official search.
"""
from __future__ import annotations

import torch
from mmengine.registry import MODELS

from gan.autogan.cell import CellOptions, CellOutput
from gan.autogan.generator import ARCH_KEY, AutoGANGenerator, GeneratorSkeleton, arch_vector
from gan.autogan.space import NUM_CELLS, AutoGANSpace, CellArch
from nas_tasks.errors import NasError
from nas_tasks.space import Arch


@MODELS.register_module()
class AutoGANSharedGenerator(GeneratorSkeleton):
    """The shared generator; ``gf_dim`` is 128 in the official search."""

    def __init__(self, gf_dim: int = 128, latent_dim: int = 128, bottom_width: int = 4):
        super().__init__([CellOptions.every(cell) for cell in range(1, NUM_CELLS + 1)],
                         gf_dim, latent_dim, bottom_width)
        self.space = AutoGANSpace()
        self.cell_archs: list[CellArch] | None = None

    def set_arch(self, arch: Arch) -> None:
        """Run the path ``arch`` (a whole arch or a stage prefix) from now on."""
        self.cell_archs = self.space.cells(arch)

    @property
    def cur_stage(self) -> int:
        """The last stage (0-based cell) the selected path runs."""
        return len(self._selected()) - 1

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generate(z, self._selected())

    def cell_outputs(self, z: torch.Tensor) -> list[CellOutput]:
        """Each selected cell's skip feature and output, for inspection."""
        return self.run_cells(z, self._selected())

    def subnet_state_dict(self, arch: Arch) -> dict[str, torch.Tensor]:
        """The weights of the path ``arch`` (whole), named as in
        :class:`~gan.autogan.generator.AutoGANGenerator`, so that one loads them exactly."""
        # The standalone generator's names are the path's; build it without memory to read them.
        with torch.device('meta'):
            names = AutoGANGenerator(arch, self.gf_dim, self.latent_dim, self.bottom_width).state_dict()
        shared = self.state_dict()
        return {name: arch_vector(arch) if name == ARCH_KEY else shared[name] for name in names}

    def _selected(self) -> list[CellArch]:
        if self.cell_archs is None:
            raise NasError('the shared AutoGAN generator has no architecture yet; call set_arch(arch)')
        return self.cell_archs
