"""ShuffleNetV2 units with DetNAS's four block choices, in plain PyTorch.

The layout follows the official DetNAS / Single Path One-Shot code (megvii):
every unit concatenates a pass-through path with a ``branch``. At stride 1 the
input is split in two by a channel shuffle and one half passes through
untouched; at stride 2 the whole input feeds both the branch and a depthwise
projection (``proj``). Nothing here needs mmcv or mmdet: the normalisation
layer is a ``norm_layer(num_features)`` callable (torch's BatchNorm2d by
default; :mod:`backbones.detnas` builds one from an mmcv ``norm_cfg``, e.g.
SyncBN).
"""
from typing import Callable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

NormLayer = Callable[[int], nn.Module]

CHOICE_NAMES = ('shuffle3x3', 'shuffle5x5', 'shuffle7x7', 'xception3x3')
_KERNEL_SIZE = {'shuffle3x3': 3, 'shuffle5x5': 5, 'shuffle7x7': 7, 'xception3x3': 3}


def channel_split(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ShuffleNetV2's shuffle-and-split: returns (even channels, odd channels)."""
    batch, channels, height, width = x.shape
    x = x.reshape(batch * channels // 2, 2, height * width).permute(1, 0, 2)
    x = x.reshape(2, batch, channels // 2, height, width)
    return x[0], x[1]


def conv_bn(in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1,
            depthwise: bool = False, relu: bool = False,
            norm_layer: NormLayer = nn.BatchNorm2d) -> list[nn.Module]:
    """Conv (no bias, 'same' padding) + BN, optionally + ReLU."""
    layers = [
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2,
                  groups=in_channels if depthwise else 1, bias=False),
        norm_layer(out_channels),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return layers


def build_stem(out_channels: int, norm_layer: NormLayer = nn.BatchNorm2d) -> nn.Sequential:
    """3x3 stride-2 conv + BN + ReLU (DetNAS has no max-pool after it)."""
    return nn.Sequential(*conv_bn(3, out_channels, 3, stride=2, relu=True, norm_layer=norm_layer))


def _shuffle_branch(in_channels, mid_channels, out_channels, kernel_size, stride, norm_layer):
    return nn.Sequential(
        *conv_bn(in_channels, mid_channels, relu=True, norm_layer=norm_layer),
        *conv_bn(mid_channels, mid_channels, kernel_size, stride, depthwise=True,
                 norm_layer=norm_layer),
        *conv_bn(mid_channels, out_channels, relu=True, norm_layer=norm_layer),
    )


def _xception_branch(in_channels, mid_channels, out_channels, stride, norm_layer):
    return nn.Sequential(
        *conv_bn(in_channels, in_channels, 3, stride, depthwise=True, norm_layer=norm_layer),
        *conv_bn(in_channels, mid_channels, relu=True, norm_layer=norm_layer),
        *conv_bn(mid_channels, mid_channels, 3, depthwise=True, norm_layer=norm_layer),
        *conv_bn(mid_channels, mid_channels, relu=True, norm_layer=norm_layer),
        *conv_bn(mid_channels, mid_channels, 3, depthwise=True, norm_layer=norm_layer),
        *conv_bn(mid_channels, out_channels, relu=True, norm_layer=norm_layer),
    )


class ShuffleNetV2Block(nn.Module):
    """One DetNAS choice block: ``choice`` is one of :data:`CHOICE_NAMES`."""

    def __init__(self, choice: str, in_channels: int, out_channels: int, stride: int,
                 norm_layer: NormLayer = nn.BatchNorm2d):
        super().__init__()
        if choice not in CHOICE_NAMES:
            raise ValueError(f'unknown block choice {choice!r}; allowed: {", ".join(CHOICE_NAMES)}')
        if stride not in (1, 2):
            raise ValueError(f'stride must be 1 or 2, got {stride}')
        if stride == 1 and in_channels % 2:
            raise ValueError(f'a stride-1 block splits its input in halves; '
                             f'{in_channels} channels is odd')
        self.choice = choice
        self.stride = stride
        kernel_size = _KERNEL_SIZE[choice]
        branch_in = in_channels // 2 if stride == 1 else in_channels
        branch_out = out_channels - branch_in
        mid_channels = out_channels // 2
        if choice == 'xception3x3':
            self.branch = _xception_branch(branch_in, mid_channels, branch_out, stride, norm_layer)
        else:
            self.branch = _shuffle_branch(branch_in, mid_channels, branch_out, kernel_size, stride,
                                          norm_layer)
        if stride == 2:
            self.proj = nn.Sequential(
                *conv_bn(in_channels, in_channels, kernel_size, stride, depthwise=True,
                         norm_layer=norm_layer),
                *conv_bn(in_channels, in_channels, relu=True, norm_layer=norm_layer),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            identity, x = channel_split(x)
            return torch.cat((identity, self.branch(x)), dim=1)
        return torch.cat((self.proj(x), self.branch(x)), dim=1)


class ChoiceBlock(nn.Module):
    """All four candidate blocks of one supernet layer; runs only the chosen one."""

    def __init__(self, in_channels: int, out_channels: int, stride: int,
                 norm_layer: NormLayer = nn.BatchNorm2d):
        super().__init__()
        self.choices = nn.ModuleList(
            ShuffleNetV2Block(choice, in_channels, out_channels, stride, norm_layer)
            for choice in CHOICE_NAMES)
        self.chosen = 0  # index into CHOICE_NAMES

    def select(self, choice: str) -> None:
        self.chosen = CHOICE_NAMES.index(choice)

    @property
    def chosen_name(self) -> str:
        return CHOICE_NAMES[self.chosen]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.choices[self.chosen](x)


def init_weights_like_detnas(module: nn.Module) -> None:
    """The official DetNAS/SPOS init: conv weights ~ N(0, 1 / fan-in channels)
    (``weight.shape[1]``, so 1 for depthwise convs), BN weight 1 and bias 1e-4
    (SyncBatchNorm too, which is a ``_BatchNorm`` but not a ``BatchNorm2d``)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0, 1.0 / m.weight.shape[1])
        elif isinstance(m, _BatchNorm) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.constant_(m.bias, 1e-4)
