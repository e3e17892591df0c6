"""Latency of AutoGAN generators: each candidate's whole generator timed once.

A cell's cost depends on which earlier cells feed it skips, so the choices are
not independent per cell; each candidate's generator (the latent in, the image
out) is timed end to end and kept under its canonical arch.

The multi-level search also asks about stage prefixes. A prefix is timed as
the search scores it: its cells, then ``to_rgb`` at that stage's resolution.
Every whole generator that grows from a prefix runs that prefix's cells and
more, so a ``max`` limit on a prefix's latency prunes only what would break it
anyway (up to timing noise and the cheaper ``to_rgb`` of a smaller image); a
``min`` limit would prune wrongly, so give latency a ``max`` only.
"""
from __future__ import annotations

import functools
from pathlib import Path

import torch

from gan.autogan.cell import CellOptions
from gan.autogan.generator import GeneratorSkeleton
from gan.autogan.space import AutoGANSpace
from nas_tasks.latency import Forward, WholeNetworkLatency
from nas_tasks.registry import COST_MODELS
from nas_tasks.space import Arch


@COST_MODELS.register_module()
class AutoGANLatency(WholeNetworkLatency):
    """A generator of ``gf_dim`` channels (256 in the published models) from a
    batch of latents, in ms. Other settings: see :class:`~nas_tasks.latency.LatencyModel`."""

    def __init__(self, space: AutoGANSpace, gf_dim: int = 256, latent_dim: int = 128,
                 bottom_width: int = 4, table: str | Path | None = None, batch: int = 1,
                 repeats: int = 10, warmup: int = 2, clock: str = 'wall', device: str | None = None):
        self.gf_dim, self.latent_dim, self.bottom_width = gf_dim, latent_dim, bottom_width
        self.network = f'autogan-generator-gf{gf_dim}-bottom{bottom_width}'
        super().__init__(space, (latent_dim,), table, batch, repeats, warmup, clock, device)

    def input_shape(self) -> tuple[int, ...]:
        return (self.latent_dim,)

    def whole_network(self, arch: Arch) -> tuple[Forward, torch.Tensor]:
        # The skeleton with one option per cell is AutoGANGenerator's network; built
        # directly, it also takes a prefix, whose cells the search scores.
        cells = self.space.cells(arch)
        generator = self.place(GeneratorSkeleton([CellOptions.only(cell) for cell in cells],
                                                 self.gf_dim, self.latent_dim, self.bottom_width))
        return functools.partial(generator.generate, cells=cells), self.zeros()
