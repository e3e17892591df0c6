"""FNA's parameter remapping: each rule on hand-made tensors, kernel growth keeps
a layer's output, and identity remapping reproduces every supported seed."""
import pytest
import torch
from torch import nn

from backbones.fna.adapted import build_adapted, remap_into_adapted
from backbones.fna.remap import remap_state, remap_tensor, stage_pairs
from backbones.fna.seed import create_seed, seed_definition

SEEDS = ['mobilenetv2_100', 'mnasnet_100', 'efficientnet_b0', 'mobilenetv3_large_100']


def test_conv_width_takes_the_first_channels_and_zeros_beyond():
    seed = torch.arange(1, 2 * 3 + 1, dtype=torch.float32).reshape(2, 3, 1, 1)
    narrower, rule = remap_tensor(seed, torch.full((1, 2, 1, 1), 9.0))
    assert narrower.flatten().tolist() == [1.0, 2.0] and rule == 'width 2x3->1x2'
    wider, _ = remap_tensor(seed, torch.full((3, 4, 1, 1), 9.0))
    assert wider[:2, :3].equal(seed) and wider[2:].abs().sum() == 0 and wider[:, 3:].abs().sum() == 0


def test_width_noise_touches_only_channels_beyond_the_seed():
    seed = torch.randn(2, 3, 3, 3)
    wider, _ = remap_tensor(seed, torch.zeros(4, 3, 3, 3), width_noise=1e-5,
                            generator=torch.Generator().manual_seed(0))
    assert wider[:2].equal(seed)
    extra = wider[2:]
    assert extra.abs().max() > 0 and extra.abs().max() < 1e-4  # 1e-5 * kaiming_uniform


def test_kernel_grows_with_a_zero_border_and_shrinks_to_the_centre():
    seed = torch.arange(9, dtype=torch.float32).reshape(1, 1, 3, 3) + 1
    grown, rule = remap_tensor(seed, torch.ones(1, 1, 7, 7))
    assert grown[0, 0, 2:5, 2:5].equal(seed[0, 0]) and grown.sum() == seed.sum()
    assert 'kernel 3x3->7x7 (zero border)' in rule
    cropped, rule = remap_tensor(torch.arange(25.0).reshape(1, 1, 5, 5), torch.zeros(1, 1, 3, 3))
    assert cropped[0, 0].tolist() == [[6, 7, 8], [11, 12, 13], [16, 17, 18]]
    assert 'centre crop' in rule


def test_one_dimensional_tensors_keep_their_init_beyond_the_seed():
    running_var, _ = remap_tensor(torch.tensor([4.0, 5.0]), torch.ones(3))
    assert running_var.tolist() == [4.0, 5.0, 1.0]
    count, rule = remap_tensor(torch.tensor(7), torch.tensor(0))
    assert int(count) == 7 and rule == 'copy'


def test_depth_rule_takes_the_same_index_or_the_stage_last():
    pairs = stage_pairs([4, 1], [2, 3], lambda s, l: f't{s}.{l}', lambda s, l: f's{s}.{l}')
    assert pairs == [('t0.0', 's0.0'), ('t0.1', 's0.1'), ('t0.2', 's0.1'), ('t0.3', 's0.1'),
                     ('t1.0', 's1.0')]


def test_remap_pairs_by_role_and_reports_what_kept_its_init():
    seed = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    target = nn.Sequential(nn.Conv2d(3, 8, 5), nn.BatchNorm2d(8), nn.Linear(2, 2))
    state, report = remap_state(seed, target, [])
    assert state['0.weight'][:4, :, 1:4, 1:4].equal(seed[0].weight.detach())
    assert report.remapped['1.running_mean']['from'] == '1.running_mean'
    assert sorted(report.kept_init) == ['2.bias', '2.weight']


@pytest.mark.parametrize('name', SEEDS)
def test_identity_remapping_reproduces_the_seed_exactly(name, tmp_path):
    seed = create_seed(name)
    with torch.no_grad():  # make BN statistics and affine values non-trivial
        for module in seed.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    torch.save(seed.state_dict(), tmp_path / 'seed.pth')
    arch = dict(seed=name, arch_def=seed_definition(name).arch_def)
    state, report = remap_into_adapted(arch, dict(name=name, weights=str(tmp_path / 'seed.pth')))
    assert not report.kept_init and {r['rule'] for r in report.remapped.values()} == {'copy'}
    adapted = build_adapted(arch, num_classes=0).eval()
    adapted.load_state_dict(state)
    seed.reset_classifier(0)
    seed.eval()
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = seed(images), adapted(images)
    assert expected.abs().sum() > 0 and torch.equal(got, expected)


def test_growing_a_kernel_keeps_a_layer_output_exactly(tmp_path):
    definition = seed_definition('mobilenetv2_100')
    seed = create_seed('mobilenetv2_100').eval()
    torch.save(seed.state_dict(), tmp_path / 'seed.pth')
    for kernel in (5, 7):
        arch_def = [list(stage) for stage in definition.arch_def]
        arch_def[2] = [block.replace('_k3_', f'_k{kernel}_') for block in arch_def[2]]
        arch = dict(seed='mobilenetv2_100', arch_def=arch_def)
        state, _ = remap_into_adapted(arch, dict(name='mobilenetv2_100',
                                                 weights=str(tmp_path / 'seed.pth')))
        adapted = build_adapted(arch, num_classes=0).eval()
        adapted.load_state_dict(state)
        x = torch.randn(1, 24, 16, 16)
        with torch.no_grad():
            assert adapted.blocks[2][0].conv_dw.weight.shape[-1] == kernel
            assert torch.equal(adapted.blocks[2](x), seed.blocks[2](x))
