"""The published Auto-DeepLab networks have the paper's size (Liu et al. 2019, Table 3).

The paper gives 10.15M, 21.62M and 44.42M parameters for Auto-DeepLab-S, -M
and -L (F = 20, 32, 48) with the DeepLabv3+ head. They are what the official
TensorFlow code builds: a 1x1 conv where a cell's input comes from the finer
level (``nas_cell._cell_base``), and DeepLab's head with plain convolutions.
docs/auto_deeplab.md has the count per module.
"""
from __future__ import annotations

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope
from torch import nn

from nas_tasks.modules import register_all_modules

# Table 3 of the paper, in millions, as printed (two decimals).
PAPER_PARAMS = {'s': 10.15, 'm': 21.62, 'l': 44.42}


def build_published(size: str) -> nn.Module:
    register_all_modules()
    from mmseg.registry import MODELS
    cfg = Config.fromfile(f'configs/auto_deeplab/autodeeplab_{size}_cityscapes.py')
    cfg.model.decode_head.norm_cfg = dict(type='BN', requires_grad=True)  # SyncBN: same parameters
    with DefaultScope.overwrite_default_scope('mmseg'):
        return MODELS.build(cfg.model)


def millions(module: nn.Module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


@pytest.mark.parametrize('size', sorted(PAPER_PARAMS))
def test_published_networks_count_the_papers_parameters(size):
    model = build_published(size)
    # Equal to the paper's figure to its two printed decimals (within 0.05%).
    assert round(millions(model), 2) == PAPER_PARAMS[size]


def test_a_cell_input_from_the_finer_level_goes_through_a_1x1_conv():
    model = build_published('s')
    # Cell 3 goes from level 0 (100 channels out of cell 2) to level 1 (F * 2 = 40 per block).
    adapter = model.backbone.cells[3].preprocess1
    assert adapter.source_offset == -1
    conv = adapter.conv[1]
    assert tuple(conv.weight.shape) == (40, 100, 1, 1)      # the search cell's is 3x3 stride 2
    assert conv.stride == (1, 1)
    assert millions(model.backbone) == pytest.approx(7.0308, abs=1e-4)


def test_the_head_has_plain_atrous_branches_a_1x1_projection_and_a_plain_decoder():
    head = build_published('s').decode_head
    branches = [module.conv for module in head.aspp_modules]
    assert [tuple(b.kernel_size) for b in branches] == [(1, 1), (3, 3), (3, 3), (3, 3)]
    assert all(b.groups == 1 for b in branches)              # not depthwise separable
    assert [b.dilation[0] for b in branches] == [1, 12, 24, 36]   # the path ends at stride 8
    assert tuple(head.bottleneck.conv.weight.shape) == (256, 5 * 256, 1, 1)
    decoder = [module.conv for module in head.sep_bottleneck]
    assert [tuple(c.weight.shape) for c in decoder] == [(256, 256 + 48, 3, 3), (256, 256, 3, 3)]
    assert millions(head) == pytest.approx(3.1166, abs=1e-4)
