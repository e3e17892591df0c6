import json
import random

import pytest
import torch
from mmengine.analysis import FlopAnalyzer, parameter_count
from torch import nn

from backbones.detnas import (CHOICE_NAMES, PRESETS, DetNASBackbone, DetNASSuperNet,
                              extract_subnet_state_dict, layer_keys, space_name,
                              subnet_state_dict)
from backbones.resources import DetNASCostTable
from backbones.shufflenet_blocks import ShuffleNetV2Block, channel_split
from nas_tasks.errors import ArchError, NasError
from conftest import randomize_batch_norms

SMALL_WIDTHS = (64, 160, 320, 640)
LARGE_WIDTHS = (96, 240, 480, 960)
STRIDES = (4, 8, 16, 32)


def random_arch(variant, seed):
    rng = random.Random(seed)
    return {key: rng.choice(CHOICE_NAMES) for key in layer_keys(variant)}


def run(model, x):
    with torch.no_grad():
        return model(x)


def write_arch_file(path, space, arch, version=1):
    path.write_text(json.dumps({'space': space, 'version': version, 'arch': arch, 'metrics': {}}))
    return path


def test_channel_split_returns_even_and_odd_channels_per_sample():
    x = torch.randn(3, 8, 5, 4)
    even, odd = channel_split(x)
    assert torch.equal(even, x[:, 0::2])
    assert torch.equal(odd, x[:, 1::2])


# Hand-counted: e.g. stride-1 shuffle3x3 at 64 channels has a 32-channel branch
# 1x1 (32*32) + dw 3x3 (32*9) + 1x1 (32*32) + 3 BNs (3*2*32) = 2528.
@pytest.mark.parametrize('choice, in_channels, out_channels, stride, num_params', [
    ('shuffle3x3', 64, 64, 1, 2528),
    ('shuffle7x7', 64, 64, 1, 3808),
    ('xception3x3', 64, 64, 1, 4320),
    ('shuffle3x3', 16, 64, 2, 3024),
    ('shuffle5x5', 16, 64, 2, 3792),
    ('xception3x3', 16, 64, 2, 4640),
])
def test_block_follows_the_shufflenet_v2_layout(choice, in_channels, out_channels, stride,
                                                num_params):
    block = ShuffleNetV2Block(choice, in_channels, out_channels, stride)
    assert sum(param.numel() for param in block.parameters()) == num_params
    out = run(block.eval(), torch.randn(2, in_channels, 16, 16))
    assert tuple(out.shape) == (2, out_channels, 16 // stride, 16 // stride)


@pytest.mark.parametrize('variant, size, widths', [
    ('small', 128, SMALL_WIDTHS),
    ('large', 64, LARGE_WIDTHS),
])
def test_supernet_outputs_stage_widths_at_strides_4_to_32(variant, size, widths):
    supernet = DetNASSuperNet(variant).eval()
    supernet.set_arch(random_arch(variant, seed=0))
    outs = run(supernet, torch.randn(2, 3, size, size))
    assert [tuple(out.shape) for out in outs] == [
        (2, width, size // stride, size // stride) for width, stride in zip(widths, STRIDES)]
    assert supernet.out_channels == widths
    assert len(supernet.layers) == {'small': 20, 'large': 40}[variant]


def test_backbone_returns_only_requested_stages():
    backbone = DetNASBackbone('detnas_300m_coco_fpn', out_indices=(1, 3)).eval()
    outs = run(backbone, torch.randn(1, 3, 96, 160))
    assert [tuple(out.shape) for out in outs] == [(1, 160, 12, 20), (1, 640, 3, 5)]
    assert backbone.out_channels == (160, 640)


def test_supernet_runs_all_shuffle3x3_until_set_arch():
    supernet = DetNASSuperNet('small')
    assert set(supernet.arch.values()) == {'shuffle3x3'}
    arch = random_arch('small', seed=1)
    supernet.set_arch(arch)
    assert supernet.arch == arch


def test_only_the_chosen_path_of_the_supernet_gets_gradients():
    supernet = DetNASSuperNet('small')
    arch = random_arch('small', seed=1)
    supernet.set_arch(arch)
    sum(out.sum() for out in supernet(torch.randn(2, 3, 64, 64))).backward()
    assert all(param.grad is not None for param in supernet.stem.parameters())
    for layer, chosen in zip(supernet.layers, arch.values()):
        for name, block in zip(CHOICE_NAMES, layer.choices):
            got_grad = [param.grad is not None for param in block.parameters()]
            assert all(got_grad) if name == chosen else not any(got_grad), (name, chosen)


@pytest.mark.parametrize('train_mode', [False, True])
def test_extracted_subnet_reproduces_the_supernet(train_mode):
    supernet = DetNASSuperNet('small')
    randomize_batch_norms(supernet, seed=0)
    arch = random_arch('small', seed=2)
    supernet.set_arch(arch)
    backbone = DetNASBackbone(arch, variant='small')
    backbone.load_state_dict(extract_subnet_state_dict(supernet, arch), strict=True)
    other_arch = random_arch('small', seed=3)
    other = DetNASBackbone(other_arch, variant='small')
    other.load_state_dict(extract_subnet_state_dict(supernet, other_arch), strict=True)
    for model in (supernet, backbone, other):
        model.train(train_mode)

    x = torch.randn(2, 3, 96, 64)
    expected, actual, different = run(supernet, x), run(backbone, x), run(other, x)

    assert all(torch.allclose(a, e, rtol=1e-5, atol=1e-6) for a, e in zip(actual, expected))
    assert not torch.allclose(different[-1], expected[-1], rtol=1e-3, atol=1e-4)
    if train_mode:  # BN running stats were updated identically
        updated = extract_subnet_state_dict(supernet, arch)
        assert all(torch.allclose(value, updated[key])
                   for key, value in backbone.state_dict().items())


def test_subnet_state_dict_maps_prefixed_detector_keys():
    arch = dict.fromkeys(layer_keys('small'), 'shuffle3x3') | {'layer03': 'shuffle7x7'}
    tensors = {key: torch.tensor(float(i)) for i, key in enumerate([
        'backbone.stem.0.weight',
        'backbone.layers.3.choices.2.branch.0.weight',
        'backbone.layers.3.choices.0.branch.0.weight',
        'neck.lateral.weight',
    ])}
    assert subnet_state_dict(tensors, arch, 'small') == {
        'backbone.stem.0.weight': tensors['backbone.stem.0.weight'],
        'backbone.layers.3.branch.0.weight': tensors['backbone.layers.3.choices.2.branch.0.weight'],
        'neck.lateral.weight': tensors['neck.lateral.weight'],
    }


@pytest.mark.parametrize('name', sorted(PRESETS))
def test_presets_build_with_their_published_blocks(name):
    preset = PRESETS[name]
    backbone = DetNASBackbone(name)
    assert backbone.variant == preset['variant']
    assert len(backbone.layers) == {'small': 20, 'large': 40}[preset['variant']]
    assert [layer.choice for layer in backbone.layers] == list(preset['arch'])


def test_preset_choice_indices_follow_the_paper_order():
    assert PRESETS['detnas_300m_coco_fpn']['arch'][:4] == (
        'shuffle7x7', 'shuffle5x5', 'shuffle7x7', 'shuffle3x3')
    assert PRESETS['detnas_1.3g_coco_fpn']['arch'][-1] == 'xception3x3'


def test_bad_choice_raises_arch_error_naming_the_layer():
    arch = random_arch('small', seed=4) | {'layer05': 'shuffle9x9'}
    with pytest.raises(ArchError, match=r"'layer05' has value 'shuffle9x9'.*shuffle3x3.*xception3x3"):
        DetNASBackbone(arch, variant='small')
    with pytest.raises(ArchError, match='layer05'):
        DetNASSuperNet('small').set_arch(arch)


def test_missing_or_unknown_layer_raises_arch_error():
    arch = random_arch('small', seed=4)
    with pytest.raises(ArchError, match=r"missing key\(s\) 'layer19'"):
        DetNASSuperNet('small').set_arch({k: v for k, v in arch.items() if k != 'layer19'})
    with pytest.raises(ArchError, match="'layer20'"):
        DetNASSuperNet('small').set_arch(arch | {'layer20': 'shuffle3x3'})


def test_dict_arch_needs_a_variant():
    with pytest.raises(NasError, match='variant is required'):
        DetNASBackbone(random_arch('small', seed=5))


def test_arch_file_infers_the_variant(tmp_path):
    path = write_arch_file(tmp_path / 'arch.json', space_name('large'), random_arch('large', 6))
    assert len(DetNASBackbone(str(path)).layers) == 40
    with pytest.raises(ArchError, match='detnas-large'):
        DetNASBackbone(str(path), variant='small')


def test_arch_file_for_another_space_raises_one_line_arch_error(tmp_path):
    path = write_arch_file(tmp_path / 'arch.json', 'nas-fpn', random_arch('small', 7))
    with pytest.raises(ArchError, match="'nas-fpn'") as error:
        DetNASBackbone(str(path))
    assert '\n' not in str(error.value)


def test_arch_file_with_bad_value_or_version_raises_arch_error(tmp_path):
    bad_value = random_arch('small', 8) | {'layer07': 'conv3x3'}
    path = write_arch_file(tmp_path / 'bad.json', 'detnas-small', bad_value)
    with pytest.raises(ArchError, match=r"bad\.json: architecture key 'layer07' has value 'conv3x3'"):
        DetNASBackbone(str(path))
    path = write_arch_file(tmp_path / 'v2.json', 'detnas-small', random_arch('small', 8), version=2)
    with pytest.raises(ArchError, match='version 2'):
        DetNASBackbone(str(path))


def test_missing_arch_file_raises_nas_error(tmp_path):
    with pytest.raises(NasError, match='no_such.json'):
        DetNASBackbone(str(tmp_path / 'no_such.json'))


COST_INPUT_SIZE = (128, 96)


@pytest.fixture(scope='module')
def small_cost_table():
    return DetNASCostTable('small', input_size=COST_INPUT_SIZE)


def official_detnas_flops(backbone: nn.Module, input_size) -> int:
    """The official DetNAS count, as a reference: a forward hook on every Conv2d
    adds in * out * k_h * k_w / groups per output pixel; nothing else counts."""
    total = 0

    def count(conv, inputs, output):
        nonlocal total
        height, width = output.shape[-2:]
        kernel_h, kernel_w = conv.kernel_size
        total += (conv.in_channels * conv.out_channels * height * width * kernel_h * kernel_w
                  // conv.groups)
    handles = [m.register_forward_hook(count) for m in backbone.modules() if isinstance(m, nn.Conv2d)]
    run(backbone.eval(), torch.zeros(1, 3, *input_size))
    for handle in handles:
        handle.remove()
    return total


def test_cost_table_counts_the_whole_backbone_like_the_official_detnas_search(small_cost_table):
    measured = []
    for seed in (9, 10):
        arch = random_arch('small', seed)
        backbone = DetNASBackbone(arch, variant='small')
        expected = {'flops': official_detnas_flops(backbone, COST_INPUT_SIZE),
                    'params': parameter_count(backbone)['']}
        assert small_cost_table.costs(arch) == pytest.approx(expected, rel=1e-9, abs=0)
        measured.append(expected)
    assert measured[0] != measured[1]
    # BN is not counted: mmengine's analyzer, which counts it, gives more.
    analyzer = FlopAnalyzer(backbone.eval(), (torch.zeros(1, 3, *COST_INPUT_SIZE),))
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    assert analyzer.total() > measured[-1]['flops']


def test_published_coco_300m_architectures_are_within_the_300m_limit_of_the_coco_search():
    from nas_tasks.builder import build_component, load_config
    from nas_tasks.registry import COST_MODELS
    import detection.detnas.space  # noqa: F401  (registers DetNASCostTable)
    cfg = load_config('configs/detnas/detnas_retinanet_coco.py', {})
    limit = cfg.search.constraints.flops.max
    cost_table = build_component(COST_MODELS, cfg.estimator.cost_model, 'estimator.cost_model')
    assert limit == 300e6
    for name in ('detnas_300m_coco_fpn', 'detnas_300m_coco_retinanet'):
        flops = cost_table.costs(DetNASBackbone(name).arch)['flops']
        # Within the limit, and still a 300M-class network (the counts are 288.1M and 291.2M).
        assert 280e6 < flops <= limit, (name, flops)


def test_cost_table_rejects_bad_arch(small_cost_table):
    with pytest.raises(ArchError, match=r"missing key\(s\) 'layer01'"):
        small_cost_table.costs({'layer00': 'shuffle3x3'})


def test_frozen_stages_freeze_stem_and_first_stages():
    backbone = DetNASBackbone('detnas_300m_coco_fpn', frozen_stages=2).train()
    frozen, trainable = [backbone.stem, *backbone.layers[:8]], backbone.layers[8:]
    assert not any(p.requires_grad for module in frozen for p in module.parameters())
    assert all(p.requires_grad for p in trainable.parameters())
    assert not any(m.training for module in frozen for m in module.modules())
    assert all(m.training for m in trainable.modules())


def test_supernet_frozen_stage_covers_every_choice():
    supernet = DetNASSuperNet('small', frozen_stages=1).train()
    assert not any(p.requires_grad for layer in supernet.layers[:4] for p in layer.parameters())
    assert all(p.requires_grad for layer in supernet.layers[4:] for p in layer.parameters())


def test_norm_eval_keeps_batch_norm_statistics_fixed_in_training():
    backbone = DetNASBackbone('detnas_300m_coco_fpn', norm_eval=True).train()
    before = backbone.layers[0].branch[1].running_mean.clone()
    backbone(torch.randn(2, 3, 64, 64))
    assert backbone.training
    assert not any(m.training for m in backbone.modules() if isinstance(m, nn.BatchNorm2d))
    assert torch.equal(backbone.layers[0].branch[1].running_mean, before)


def test_mmdet_registry_builds_supernet_and_backbone():
    import backbones  # noqa: F401  (registers the models)
    from mmdet.registry import MODELS
    supernet = MODELS.build(dict(type='DetNASSuperNet', variant='small', out_indices=(2, 3)))
    backbone = MODELS.build(dict(type='DetNASBackbone', arch='detnas_300m_voc_retinanet'))
    assert isinstance(supernet, DetNASSuperNet) and isinstance(backbone, DetNASBackbone)
    x = torch.randn(1, 3, 64, 64)
    assert [out.shape[1] for out in run(supernet.eval(), x)] == [320, 640]
    assert [out.shape[1] for out in run(backbone.eval(), x)] == list(SMALL_WIDTHS)


@pytest.mark.parametrize('config, norm', [
    ('configs/detnas/detnas_retinanet_coco.py', nn.SyncBatchNorm),
    ('configs/detnas/detnas_faster_rcnn_coco.py', nn.SyncBatchNorm),
    ('configs/detnas/detnas_retinanet_toy.py', nn.BatchNorm2d),
])
def test_coco_searches_train_the_supernet_with_sync_bn_and_the_toy_one_with_bn(config, norm):
    """The official DetNAS search's SyncBN (2 images per GPU) on COCO; BN on the CPU toy."""
    import backbones  # noqa: F401  (registers the models)
    from mmdet.registry import MODELS
    from mmengine.config import Config
    cfg = Config.fromfile(config)
    if norm is nn.SyncBatchNorm:
        assert cfg.train_dataloader.batch_size == 2
    supernet = MODELS.build({**cfg.model.backbone, 'init_cfg': None})
    norms = [m for m in supernet.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert len(norms) > 100 and all(isinstance(m, norm) for m in norms)
    # Initialised like the official code whatever the norm: weight 1, bias 1e-4.
    assert all(torch.all(m.bias == 1e-4) and torch.all(m.weight == 1) for m in norms)


def test_the_norm_cfg_reaches_every_layer_of_a_found_backbone_and_an_unknown_one_is_refused():
    backbone = DetNASBackbone('detnas_300m_coco_fpn', norm_cfg=dict(type='GN', num_groups=2))
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in backbone.modules())
    assert sum(isinstance(m, nn.GroupNorm) for m in backbone.modules()) > 50
    with pytest.raises(NasError, match="norm_cfg type 'NoSuchNorm' is not a normalisation layer"):
        DetNASSuperNet(norm_cfg=dict(type='NoSuchNorm'))
