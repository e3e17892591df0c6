"""Candidate operations of the Auto-DeepLab cell and the resampling of cell inputs.

The eight candidates (Liu et al., CVPR 2019, section 3.1), in the fixed order
of :data:`PRIMITIVES` (the index of an op in an alpha row):

====  ================  ==========================================================
 idx   name              paper's operator
====  ================  ==========================================================
 0     ``none``          no connection (zero)
 1     ``skip_connect``  skip connection (identity)
 2     ``max_pool_3x3``  3x3 max pooling
 3     ``avg_pool_3x3``  3x3 average pooling
 4     ``sep_conv_3x3``  3x3 depthwise-separable conv
 5     ``sep_conv_5x5``  5x5 depthwise-separable conv
 6     ``dil_conv_3x3``  3x3 atrous conv with rate 2
 7     ``dil_conv_5x5``  5x5 atrous conv with rate 2
====  ================  ==========================================================

The identifiers are DARTS's, which the public Auto-DeepLab code uses too.
All ops keep the resolution and the channel count (stride 1): a cell resamples
its inputs first (:class:`InputAdapter`). Convolutions are ReLU-Conv-BN as in
DARTS; a separable conv is (ReLU, depthwise, pointwise, BN) twice, like
DARTS' SepConv and the official ``separable_kxk_2``. The atrous convs are a
*full* k x k convolution with dilation 2 (ReLU-Conv-BN), as the official
TensorFlow cell (``deeplab/core/nas_cell.py``, 'atrous_kxk') builds them; the
paper's parameter counts (10.15M for Auto-DeepLab-S) need full convs, whereas
DARTS' ``dil_conv`` is separable. In the search network the BN layers have no
affine parameters and pooling is followed by a BN (DARTS' search convention);
the derived network uses affine BN and plain pooling.
"""
from __future__ import annotations

import contextlib
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.checkpoint import checkpoint

PRIMITIVES = ('none', 'skip_connect', 'max_pool_3x3', 'avg_pool_3x3',
              'sep_conv_3x3', 'sep_conv_5x5', 'dil_conv_3x3', 'dil_conv_5x5')

# Modes of bilinear resizing, used wherever a feature map changes size.
ALIGN_CORNERS = True


class Zero(nn.Module):
    """'none': a zero tensor of the input's shape."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


class ReLUConvBN(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1,
                 stride: int = 1, dilation: int = 1, affine: bool = True):
        padding = dilation * (kernel_size - 1) // 2
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                      dilation=dilation, bias=False),
            nn.BatchNorm2d(out_channels, affine=affine))


class SepConv(nn.Sequential):
    """(ReLU, depthwise k x k, pointwise 1x1, BN) applied twice."""

    def __init__(self, channels: int, kernel_size: int, affine: bool = True):
        layers = []
        for _ in range(2):
            layers += [
                nn.ReLU(inplace=False),
                nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2,
                          groups=channels, bias=False),
                nn.Conv2d(channels, channels, 1, bias=False),
                nn.BatchNorm2d(channels, affine=affine)]
        super().__init__(*layers)


def build_op(name: str, channels: int, search: bool = False) -> nn.Module:
    """The op ``name`` on ``channels`` channels; ``search`` selects the search-time
    variant (non-affine BN, BN after pooling)."""
    affine = not search
    if name == 'none':
        return Zero()
    if name == 'skip_connect':
        return nn.Identity()
    if name in ('max_pool_3x3', 'avg_pool_3x3'):
        pool = (nn.MaxPool2d(3, stride=1, padding=1) if name == 'max_pool_3x3'
                else nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False))
        return nn.Sequential(pool, nn.BatchNorm2d(channels, affine=False)) if search else pool
    if name in ('sep_conv_3x3', 'sep_conv_5x5'):
        return SepConv(channels, int(name[-1]), affine=affine)
    if name in ('dil_conv_3x3', 'dil_conv_5x5'):
        return ReLUConvBN(channels, channels, int(name[-1]), dilation=2, affine=affine)
    raise ValueError(f'unknown op {name!r}; ops are {", ".join(PRIMITIVES)}')


def level_sizes(stem_size: Sequence[int], num_levels: int) -> list[tuple[int, int]]:
    """Spatial size of each level: level 0 is the stem's output (stride 4), every
    next level is what a 3x3 stride-2 convolution with padding 1 makes of the
    previous one (``ceil(n / 2)``), e.g. 17 -> 9 -> 5 -> 3 for a 65 px image."""
    sizes = [tuple(int(n) for n in stem_size)]
    for _ in range(num_levels - 1):
        sizes.append(tuple((n + 1) // 2 for n in sizes[-1]))
    return sizes


def resize_to(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize to ``size`` (a no-op when ``x`` has that size already)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode='bilinear', align_corners=ALIGN_CORNERS)


class InputAdapter(nn.Module):
    """Brings H^{l-1} from its level to the cell's level and to ``out_channels``.

    ``source_offset`` is (source level - cell level), as the paper prescribes
    (section 5.1): -1, from the next-finer level: a 3x3 stride-2 ReLU-Conv-BN
    (halves the size); 0: a 1x1 ReLU-Conv-BN; +1, from the next-coarser level:
    bilinear upsampling to the cell's size, then a 1x1 ReLU-Conv-BN.

    ``strided_conv=False`` (the derived network) replaces the 3x3 stride-2
    conv by the official network's reduction (``nas_cell._cell_base``): a 1x1
    ReLU-Conv-BN at the finer level, here followed by a bilinear halving where
    the official cell runs its ops with stride 2. The 3x3 conv has 9x the
    parameters: 0.8M of Auto-DeepLab-S's (4.6M of -L's) that the paper's
    counts do not hold.
    """

    def __init__(self, in_channels: int, out_channels: int, source_offset: int,
                 affine: bool = True, strided_conv: bool = True):
        super().__init__()
        if source_offset not in (-1, 0, 1):
            raise ValueError(f'source_offset must be -1, 0 or 1, got {source_offset}')
        self.source_offset = source_offset
        if source_offset == -1 and strided_conv:
            self.conv = ReLUConvBN(in_channels, out_channels, 3, stride=2, affine=affine)
        else:
            self.conv = ReLUConvBN(in_channels, out_channels, 1, affine=affine)

    def forward(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        if self.source_offset == 1:
            x = resize_to(x, size)
        return resize_to(self.conv(x), size)


class PrevPrevAdapter(nn.Module):
    """Brings H^{l-2} to the cell: bilinear resize to the cell's size (when it
    differs, as the official ``_cell_base`` does), then a 1x1 ReLU-Conv-BN."""

    def __init__(self, in_channels: int, out_channels: int, affine: bool = True):
        super().__init__()
        self.conv = ReLUConvBN(in_channels, out_channels, 1, affine=affine)

    def forward(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        return self.conv(resize_to(x, size))


class Stem(nn.Sequential):
    """3x3 Conv-BN-ReLU layers; ``forward`` returns (H^{-2}, H^{-1}).

    H^{-1} is the last layer's output (stride 4), H^{-2} the output of the
    layer before it, which the first cell takes as its H^{l-2} (as the
    official network passes the stem's stride-2 feature to cell 0).
    """

    def __init__(self, channels: Sequence[int], strides: Sequence[int], in_channels: int = 3):
        layers = []
        for out_channels, stride in zip(channels, strides):
            layers.append(nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)))
            in_channels = out_channels
        super().__init__(*layers)
        self.channels = tuple(channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        previous = x
        for layer in self:
            previous, x = x, layer(x)
        return previous, x


@contextlib.contextmanager
def _keep_norm_statistics(module: nn.Module):
    """Restores the running statistics of ``module``'s batch norms on exit."""
    saved = [(norm, {name: buffer.clone() for name, buffer in norm.named_buffers(recurse=False)})
             for norm in module.modules() if isinstance(norm, _BatchNorm) and norm.training]
    try:
        yield
    finally:
        with torch.no_grad():
            for norm, buffers in saved:
                for name, value in buffers.items():
                    getattr(norm, name).copy_(value)


class _RecomputedCall(torch.autograd.Function):
    """``module(*inputs, **kwargs)`` that keeps only its inputs; backward runs it again.

    The module's parameters are inputs of the function, so their gradients
    reach them through the outer backward, as in a plain call (DDP's hooks
    fire as usual). A whole cell is one autograd node here, whereas
    ``torch.utils.checkpoint`` (non-reentrant) runs Python hooks for every
    tensor the cell saves; at the paper's search setting on CPU that took the
    step from 1.41x to 1.59x of the plain step's time.
    """

    @staticmethod
    def forward(ctx, module: nn.Module, kwargs: dict, num_inputs: int, *tensors: torch.Tensor):
        inputs = tensors[:num_inputs]
        ctx.module, ctx.kwargs = module, kwargs
        device_type = inputs[0].device.type
        ctx.autocast = dict(device_type=device_type,
                            enabled=torch.is_autocast_enabled(device_type),
                            dtype=torch.get_autocast_dtype(device_type))
        ctx.save_for_backward(*inputs)
        return module(*inputs, **kwargs)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        inputs = [saved.detach().requires_grad_(saved.requires_grad)
                  for saved in ctx.saved_tensors]
        tensors = (*inputs, *ctx.module.parameters())
        wanted = [tensor for tensor in tensors if tensor.requires_grad]
        with torch.enable_grad(), torch.autocast(**ctx.autocast), \
                _keep_norm_statistics(ctx.module):
            output = ctx.module(*inputs, **ctx.kwargs)
            # Inside the context: restoring the statistics bumps their version,
            # which the recomputed graph checks.
            grads = iter(torch.autograd.grad(output, wanted, grad_output, allow_unused=True))
        return (None, None, None,
                *(next(grads) if tensor.requires_grad else None for tensor in tensors))


def checkpointed(module: nn.Module, *args, **kwargs):
    """``module(*args, **kwargs)`` under activation checkpointing.

    Only the inputs are kept for backward, which recomputes the forward. The
    recomputation runs with the batch norms' running statistics restored
    afterwards, so they are updated once per forward, as without
    checkpointing: outputs, gradients and statistics equal the plain call.
    Without gradients (inference) the module simply runs.
    """
    if not torch.is_grad_enabled():
        return module(*args, **kwargs)
    if kwargs.get('active') is not None:
        # Single path: the ops not drawn get no gradient. As inputs of one
        # function they would count as used for DDP, so torch's checkpoint,
        # which leaves them out of the graph, is used instead.
        return checkpoint(module, *args, use_reentrant=False,
                          context_fn=lambda: (contextlib.nullcontext(),
                                              _keep_norm_statistics(module)),
                          **kwargs)
    return _RecomputedCall.apply(module, kwargs, len(args), *args, *module.parameters())


def run_cell(cell: nn.Module, *args, with_cp: bool = False, **kwargs):
    """``cell(*args, **kwargs)``, under :func:`checkpointed` when ``with_cp``."""
    return checkpointed(cell, *args, **kwargs) if with_cp else cell(*args, **kwargs)
