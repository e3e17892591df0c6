"""The fixed AutoGAN discriminator (SNGAN-style, reference sheet 1.4), growing with the search stage.

Four residual blocks of constant width ``df_dim``, ReLU, global *sum* pooling
(the official code sums, though its comment says average) and a bias-free
linear layer; spectral norm on every conv and on the linear layer. At search
stage ``cur_stage`` it runs blocks 1..``cur_stage + 1`` and then block 4, so
it takes 8, 16 and 32 px images at stages 0, 1 and 2 (32 px, stage 2, for
the final models).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from nas_tasks.errors import NasError
from nas_tasks.validation import is_int

NUM_STAGES = 3


def _sn_conv(in_channels: int, out_channels: int, kernel_size: int) -> nn.Module:
    return spectral_norm(nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2))


class OptimizedDisBlock(nn.Module):
    """The first block, on the image: conv, ReLU, conv, avg-pool; shortcut avg-pool then 1x1 conv."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.c1 = _sn_conv(in_channels, out_channels, 3)
        self.c2 = _sn_conv(out_channels, out_channels, 3)
        self.c_sc = _sn_conv(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = F.avg_pool2d(self.c2(F.relu(self.c1(x))), 2)
        return residual + self.c_sc(F.avg_pool2d(x, 2))


class DisBlock(nn.Module):
    """ReLU, conv, ReLU, conv, [avg-pool]; the shortcut is a 1x1 conv then
    [avg-pool] when the block down-samples or changes width, else identity."""

    def __init__(self, in_channels: int, out_channels: int, downsample: bool):
        super().__init__()
        self.downsample = downsample
        self.c1 = _sn_conv(in_channels, out_channels, 3)
        self.c2 = _sn_conv(out_channels, out_channels, 3)
        self.learnable_sc = downsample or in_channels != out_channels
        if self.learnable_sc:
            self.c_sc = _sn_conv(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self._pool(self.c2(F.relu(self.c1(F.relu(x)))))
        shortcut = self._pool(self.c_sc(x)) if self.learnable_sc else x
        return residual + shortcut

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 2) if self.downsample else x


@MODELS.register_module()
class AutoGANDiscriminator(nn.Module):
    """The discriminator; ``df_dim`` is 64 in the official search, 128 for the final models."""

    def __init__(self, df_dim: int = 128, cur_stage: int = NUM_STAGES - 1):
        super().__init__()
        self.block1 = OptimizedDisBlock(3, df_dim)
        self.block2 = DisBlock(df_dim, df_dim, downsample=True)
        self.block3 = DisBlock(df_dim, df_dim, downsample=False)
        self.block4 = DisBlock(df_dim, df_dim, downsample=False)
        self.l5 = spectral_norm(nn.Linear(df_dim, 1, bias=False))
        self.cur_stage = cur_stage

    @property
    def cur_stage(self) -> int:
        return self._cur_stage

    @cur_stage.setter
    def cur_stage(self, stage: int) -> None:
        if not is_int(stage) or not 0 <= stage < NUM_STAGES:
            raise NasError(f'the AutoGAN discriminator has stages 0..{NUM_STAGES - 1}, got {stage!r}')
        self._cur_stage = stage

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for block in (self.block1, self.block2, self.block3)[:self.cur_stage + 1]:
            h = block(h)
        h = F.relu(self.block4(h))
        return self.l5(h.sum(dim=(2, 3)))
