"""FNA's DeepLabv3 is the paper's network: the published Cityscapes network counts the
paper's parameters and multiply-adds, its dilated stage is dilated from its first block,
and its ASPP head is the official separable one (JaminFong/FNA fna_seg network.py,
head/ASPP_Sep.py, backbone/derive_blocks.py)."""
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.registry import MODELS as ROOT_MODELS
from torch import nn

from backbones.fna.adapted import FNABackbone
from backbones.fna.dilation import stage_dilations
from backbones.fna.super_net import FNASuperNet
from backbones.resources import count_multiply_adds
from segmentation.fna import SeparableASPPHead

CITYSCAPES_FINETUNE = 'configs/fna/deeplabv3_fna_finetune_cityscapes.py'
FNA_DEEPLABV3_CONFIGS = [
    CITYSCAPES_FINETUNE, 'configs/fna/deeplabv3_fna_finetune_toy.py',
    'configs/fna/fna_deeplabv3_cityscapes.py', 'configs/fna/fna_deeplabv3_toy.py']
# The paper's Cityscapes table (FNA, ICLR 2020, Table 3): DeepLabv3 with the FNA network,
# output stride 16. Its MAdds are those of a whole 1024x2048 Cityscapes image.
PAPER_PARAMS, PAPER_MADDS, PAPER_INPUT_SIZE = 2.47e6, 24.17e9, (1024, 2048)
MOBILENETV2_STAGE_OF_160_CHANNELS = 5


def build_published_network(config: str = CITYSCAPES_FINETUNE):
    """The config's DeepLabv3 with the published searched network, untrained."""
    cfg = Config.fromfile(config)
    cfg.model.backbone.arch = 'fna_deeplabv3_mobilenetv2'
    cfg.model.backbone.weights = None
    with DefaultScope.overwrite_default_scope('mmseg'):
        return ROOT_MODELS.build(cfg.model)


def test_published_cityscapes_network_counts_the_papers_parameters_and_madds():
    model = build_published_network()
    params = sum(p.numel() for p in model.parameters())
    assert params == pytest.approx(PAPER_PARAMS, rel=0.01)
    # The paper's MAdds: the multiply-adds of every convolution (the official counter,
    # fna_det/tools/multadds_count.py, hooks nn.Conv2d and nn.Linear only). Shapes alone
    # decide them, so the count runs on the meta device, in no time.
    model = model.to('meta')
    image = torch.zeros(1, 3, *PAPER_INPUT_SIZE, device='meta')
    madds = count_multiply_adds(_DenseOutput(model), image)
    assert madds == pytest.approx(PAPER_MADDS, rel=0.01)


class _DenseOutput(nn.Module):
    """The segmentor's logits (mmseg's 'tensor' mode) as a plain module's forward."""

    def __init__(self, segmentor):
        super().__init__()
        self.segmentor = segmentor

    def forward(self, images):
        return self.segmentor(images, mode='tensor')


@pytest.mark.parametrize('config', FNA_DEEPLABV3_CONFIGS)
def test_every_fna_deeplabv3_config_uses_the_separable_head(config):
    assert Config.fromfile(config).model.decode_head.type == 'SeparableASPPHead'


def test_the_head_is_the_official_separable_aspp():
    head = build_published_network().decode_head
    assert isinstance(head, SeparableASPPHead)
    in_channels, channels, classes = 320, 256, 19
    one_by_one, *atrous = head.aspp_modules
    assert one_by_one.conv.kernel_size == (1, 1)
    for branch, rate in zip(atrous, (6, 12, 18)):
        # Depthwise 3x3 at the rate, BN, ReLU, then pointwise 1x1, BN, ReLU.
        depthwise, pointwise = branch.depthwise_conv, branch.pointwise_conv
        assert depthwise.conv.groups == in_channels and depthwise.conv.kernel_size == (3, 3)
        assert depthwise.conv.dilation == (rate, rate) and depthwise.conv.padding == (rate, rate)
        assert depthwise.with_norm and depthwise.with_activation
        assert pointwise.conv.kernel_size == (1, 1) and pointwise.conv.out_channels == channels
        assert pointwise.with_norm and pointwise.with_activation
    assert head.bottleneck.conv.kernel_size == (1, 1)
    assert head.bottleneck.conv.in_channels == 5 * channels  # 4 branches and image pooling
    assert head.conv_seg.kernel_size == (1, 1) and head.conv_seg.bias is not None
    assert isinstance(head.dropout, nn.Dropout2d) and head.dropout.p == 0.1
    assert head.align_corners  # the official logits are upsampled with align_corners=True
    # Parameter for parameter the official ASPP_Sep(320, 256) and its classifier.
    bn = 2 * channels
    official = (in_channels * channels + bn                                   # 1x1 branch
                + 3 * (in_channels * 9 + 2 * in_channels + in_channels * channels + bn)
                + in_channels * channels + bn                                 # image pooling
                + 5 * channels * channels + bn                                # 1x1 over the concat
                + channels * classes + classes)                               # classifier
    assert sum(p.numel() for p in head.parameters()) == official


def test_output_stride_16_dilates_the_whole_stage_from_its_first_block():
    backbone = FNABackbone('fna_deeplabv3_mobilenetv2', out_indices=(4,), output_stride=16)
    dilations = [[block.conv_dw.dilation[0] for block in stage] for stage in backbone.model.blocks]
    # The 160-channel stage (stride 2 -> dilation 2) and the 320 stage after it.
    assert dilations[MOBILENETV2_STAGE_OF_160_CHANNELS:] == [[2, 2], [2]]
    assert all(d == 1 for stage in dilations[:MOBILENETV2_STAGE_OF_160_CHANNELS] for d in stage)
    first = backbone.model.blocks[MOBILENETV2_STAGE_OF_160_CHANNELS][0].conv_dw
    assert first.padding == (6, 6)  # 7x7 at dilation 2 keeps the size
    assert backbone.strides == [16]
    assert backbone(torch.zeros(1, 3, 64, 96))[0].shape[-2:] == (4, 6)

    # The super network's candidates of that stage's first layer alike (the search sees
    # the network it hands over).
    supernet = FNASuperNet(dict(name='mobilenetv2_100'), depths=(2, 2, 3, 3, 2, 1),
                           out_indices=(4,), output_stride=16)
    stage = supernet.layout.searchable.index(MOBILENETV2_STAGE_OF_160_CHANNELS)
    first_layer = supernet.stages[stage][0]
    assert {op.conv_dw.dilation for op in first_layer.candidates} == {(2, 2)}


def test_stage_dilations_follow_the_official_derive_blocks():
    arch_def = FNABackbone('fna_deeplabv3_mobilenetv2', out_indices=(4,)).arch['arch_def']
    # Stages 16(s1) 24(s2) 32(s2) 64(s2) 96(s1) 160(s2) 320(s1) after a stride-2 stem.
    assert stage_dilations(arch_def, 32) == [1, 1, 1, 1, 1, 1, 1]
    assert stage_dilations(arch_def, 16) == [1, 1, 1, 1, 1, 2, 2]
    assert stage_dilations(arch_def, 8) == [1, 1, 1, 2, 2, 4, 4]


def test_the_segmentation_search_costs_the_backbone_at_its_output_stride():
    """best_arch.json's MAdds are the backbone as DeepLab runs it, dilated at output stride
    16 (the search once counted it at stride 32: 14.4 G instead of 18.7 G at 1024x2048)."""
    from backbones.fna.adapted import resolve_fna_arch
    from segmentation.fna import FNASegmentationSearch

    cfg = Config.fromfile('configs/fna/fna_deeplabv3_cityscapes.py')
    search = FNASegmentationSearch(cfg, trainer=dict(cfg.differentiable_search.trainer),
                                   cost=dict(input_size=(256, 512)))
    arch = resolve_fna_arch('fna_deeplabv3_mobilenetv2')
    dense = FNABackbone(arch='fna_deeplabv3_mobilenetv2', out_indices=(4,), output_stride=16)
    strided = FNABackbone(arch='fna_deeplabv3_mobilenetv2', out_indices=(4,), output_stride=32)
    image = torch.zeros(1, 3, 256, 512)
    expected, at_stride_32 = (count_multiply_adds(net, image) for net in (dense, strided))
    assert expected > 1.2 * at_stride_32  # the dilated stages cost more: the check can fail
    assert search.costs(arch)['flops'] == pytest.approx(expected, rel=1e-6)
