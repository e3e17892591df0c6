import json
import random

import pytest
import torch
from mmdet.models.necks import NASFPN
from mmdet.registry import MODELS
from torch import nn

from detection.nas_fpn import PRESETS, NASFPNSpace, SearchableNASFPN, state_dict_from_mmdet_nasfpn
from detection.nas_fpn.space import cells_to_arch
from nas_tasks.errors import ArchError, NasError
from nas_tasks.registry import SPACES
from nas_tasks.space import load_arch
from conftest import randomize_batch_norms

# Backbone levels C2..C5; with start_level=1 the neck uses C3..C5 (sizes 32,
# 16, 8) and adds P6, P7 (4, 2) by pooling.
IN_CHANNELS = [32, 64, 128, 256]
IN_SIZES = [64, 32, 16, 8]
P3_TO_P7_SIZES = [32, 16, 8, 4, 2]
CHANNELS = 16
BN = dict(type='BN', requires_grad=True)


def backbone_features(seed=0, batch=2):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, c, s, s, generator=generator)
            for c, s in zip(IN_CHANNELS, IN_SIZES)]


def build_neck(arch, stack_times=1, channels=CHANNELS, norm_cfg=None):
    return SearchableNASFPN(IN_CHANNELS, channels, num_outs=5, stack_times=stack_times,
                            start_level=1, norm_cfg=norm_cfg, arch=arch).eval()


def run(model, features):
    with torch.no_grad():
        return model(features)


# -- the space ------------------------------------------------------------------

def test_space_keys_options_and_registry():
    space = SPACES.build(dict(type='NASFPNSpace'))
    assert (space.name, space.version, space.num_cells) == ('nas-fpn', 1, 7)
    assert space.keys[:4] == ['cell0.input0', 'cell0.input1', 'cell0.level', 'cell0.op']
    assert space.options('cell0.input0') == [0, 1, 2, 3, 4]
    assert space.options('cell3.input1') == list(range(8))
    assert space.options('cell1.level') == [4, 5, 6, 7]  # no P3 in intermediate cells
    assert [space.options(f'cell{i}.level') for i in range(2, 7)] == [[3], [4], [5], [7], [6]]
    assert space.options('cell6.op') == ['sum', 'global_pool']
    assert NASFPNSpace(num_cells=6, output_levels=(3, 4, 5, 6, 7)).options('cell5.level') == [7]
    with pytest.raises(NasError, match='num_cells >= num_inputs'):
        NASFPNSpace(num_cells=4)
    with pytest.raises(NasError, match='output_levels'):
        NASFPNSpace(output_levels=(3, 4, 5, 6, 6))


def test_sample_mutate_and_crossover_give_only_valid_archs():
    space = NASFPNSpace()
    rng = random.Random(0)
    archs = [space.sample(rng) for _ in range(200)]
    assert all(space.is_valid(arch) for arch in archs)
    assert len({space.canonical(arch) for arch in archs}) == 200
    for a, b in zip(archs, archs[1:]):
        assert space.is_valid(space.mutate(a, 0.5, rng))
        child = space.mutate_one(a, rng)
        assert space.is_valid(child) and sum(child[k] != a[k] for k in space.keys) == 1
        assert space.is_valid(space.crossover(a, b, rng))


def test_preset_keeps_unused_p5_and_p7_for_their_output_cells():
    # As mmdet's NASFPN: P5 out = sum(P5, gp(P4 out, P3 out)), P7 out = sum(P7, gp(...)).
    specs = NASFPNSpace().cell_specs(PRESETS['nas_fpn'])
    assert [spec.unused_inputs for spec in specs] == [(), (), (), (), (2,), (4,), ()]


# -- architectures build and run -------------------------------------------------

@pytest.mark.parametrize('seed', range(10))
def test_random_archs_output_p3_to_p7(seed):
    # Seeds 0..7 from the default space; 8, 9 from a 9-cell space whose
    # intermediate cells may also output P3.
    space = NASFPNSpace() if seed < 8 else NASFPNSpace(num_cells=9, intermediate_levels=range(3, 8))
    arch = space.sample(random.Random(seed))
    features = backbone_features(seed)
    for stack_times in (1, 2):
        outputs = run(build_neck(arch, stack_times), features)
        assert [tuple(out.shape) for out in outputs] == [
            (2, CHANNELS, size, size) for size in P3_TO_P7_SIZES]
        assert all(torch.isfinite(out).all() for out in outputs)


def test_built_from_the_mmdet_registry():
    neck = MODELS.build(dict(type='SearchableNASFPN', in_channels=IN_CHANNELS, out_channels=8,
                             num_outs=5, stack_times=2, start_level=1, norm_cfg=BN))
    neck.init_weights()
    assert neck.arch == PRESETS['nas_fpn']
    assert len(neck.stages) == 2 and neck.stages[0] is not neck.stages[1]
    outputs = run(neck.eval(), backbone_features())
    assert [out.shape[-1] for out in outputs] == P3_TO_P7_SIZES


# -- invalid architectures -------------------------------------------------------

def preset_with(**changes):
    arch = dict(PRESETS['nas_fpn'])
    arch.update({key.replace('_', '.'): value for key, value in changes.items()})
    return arch


@pytest.mark.parametrize('arch, message', [
    (preset_with(cell3_input1=6), r'^cell 3: input1 \(6\) must differ from input0 \(6\)$'),
    (preset_with(cell1_input0=7), r'^cell 1: input0 \(7\) is the output of cell 2, which does '
                                  r'not exist yet'),
    (preset_with(cell0_input1=-1), r'^cell 0: input1 must be a feature index from 0 to 4'),
    (preset_with(cell2_input0=True), r'^cell 2: input0 must be a feature index'),
    # The neck accepts intermediate cells at any level, the default space not at P3.
    (preset_with(cell0_level=8), r'^cell 0: level must be one of (3, )?4, 5, 6, 7, got 8$'),
    (preset_with(cell4_level=4), r'^cell 4: level must be 5, got 4 \(the last 5 cells output'),
    (preset_with(cell5_op='concat'), r"^cell 5: op must be one of 'sum', 'global_pool', "
                                     r"got 'concat'$"),
])
def test_invalid_arch_is_rejected_naming_cell_and_decision(arch, message):
    space = NASFPNSpace()
    assert not space.is_valid(arch)
    with pytest.raises(ArchError, match=message):
        space.validate(arch)
    with pytest.raises(ArchError, match=message):
        build_neck(arch)


def test_intermediate_p3_is_outside_the_default_space_but_builds():
    arch = preset_with(cell0_level=3)
    with pytest.raises(ArchError, match=r'^cell 0: level must be one of 4, 5, 6, 7, got 3$'):
        NASFPNSpace().validate(arch)
    assert NASFPNSpace(intermediate_levels=range(3, 8)).is_valid(arch)
    outputs = run(build_neck(arch), backbone_features())
    assert [out.shape[-1] for out in outputs] == P3_TO_P7_SIZES


def test_missing_or_unknown_keys_are_rejected():
    arch = preset_with(cell7_op='sum')
    with pytest.raises(ArchError, match="missing key.*'cell7.input0'"):
        build_neck(arch)
    del arch['cell7.op']
    del arch['cell6.op']
    with pytest.raises(ArchError, match="missing key.*'cell6.op'"):
        build_neck(arch)
    with pytest.raises(NasError, match=r"neither a preset of 'nas-fpn' \(nas_fpn\)"):
        build_neck('no_such_preset')


# -- equivalence with mmdet ------------------------------------------------------

@pytest.mark.parametrize('stack_times', [1, 2])
def test_preset_with_mapped_weights_computes_mmdet_nasfpn(stack_times):
    torch.manual_seed(stack_times)
    reference = NASFPN(IN_CHANNELS, 32, num_outs=5, stack_times=stack_times, start_level=1,
                       norm_cfg=BN)
    reference.init_weights()
    for module in reference.modules():
        if isinstance(module, nn.Conv2d) and module.bias is not None:
            nn.init.normal_(module.bias, std=0.1)  # Caffe2Xavier zeroes them
    randomize_batch_norms(reference, seed=stack_times)
    ours = build_neck('nas_fpn', stack_times, channels=32, norm_cfg=BN)
    ours.load_state_dict(state_dict_from_mmdet_nasfpn(reference.state_dict()), strict=True)

    features = backbone_features(seed=stack_times)
    expected = run(reference.eval(), features)
    outputs = run(ours, features)
    assert len(outputs) == 5
    for out, ref in zip(outputs, expected):
        assert out.shape == ref.shape
        assert torch.allclose(out, ref, rtol=1e-5, atol=1e-6)


def test_weight_mapping_keeps_prefixes_and_rejects_unknown_cells():
    mapped = state_dict_from_mmdet_nasfpn({
        'neck.fpn_stages.1.sum_55_5.out_conv.conv.weight': 1,
        'neck.lateral_convs.0.conv.weight': 2, 'backbone.conv1.weight': 3})
    assert mapped == {'neck.stages.1.cells.4.out_conv.conv.weight': 1,
                      'neck.lateral_convs.0.conv.weight': 2, 'backbone.conv1.weight': 3}
    with pytest.raises(NasError, match="'fpn_stages.0.concat_44_4.out_conv.conv.weight'"):
        state_dict_from_mmdet_nasfpn({'fpn_stages.0.concat_44_4.out_conv.conv.weight': 0})


# -- arch files -------------------------------------------------------------------

def test_arch_json_round_trip_and_neck_from_path(tmp_path):
    space = NASFPNSpace()
    arch = space.sample(random.Random(42))
    path = tmp_path / 'arch.json'
    space.save_arch(path, arch, metrics={'bbox_mAP': 0.3})
    assert space.from_document(load_arch(path)) == arch

    from_path, from_dict = build_neck(path), build_neck(arch)
    assert from_path.arch == arch
    from_path.load_state_dict(from_dict.state_dict(), strict=True)
    features = backbone_features()
    for a, b in zip(run(from_path, features), run(from_dict, features)):
        assert torch.equal(a, b)


def test_arch_file_of_another_space_is_rejected(tmp_path):
    path = tmp_path / 'arch.json'
    path.write_text(json.dumps({'space': 'detnas-small', 'version': 1,
                                'arch': PRESETS['nas_fpn'], 'metrics': {}}))
    with pytest.raises(ArchError, match=r"arch\.json: .*'detnas-small'"):
        build_neck(path)


def test_arch_of_a_space_with_other_cells_and_output_order_builds(tmp_path):
    space = NASFPNSpace(num_cells=8, output_levels=(7, 6, 5, 4, 3))
    arch = space.sample(random.Random(1))
    path = tmp_path / 'arch.json'
    space.save_arch(path, arch)
    neck = build_neck(path)
    assert len(neck.stages[0].cells) == 8
    outputs = run(neck, backbone_features())
    assert [out.shape[-1] for out in outputs] == P3_TO_P7_SIZES


# -- unused features ---------------------------------------------------------------

def test_unused_cell_output_is_added_to_the_output_cell_of_its_level():
    arch = cells_to_arch([
        (0, 1, 5, 'sum'),  # feature 5, at level 5, that no later cell takes
        (1, 2, 4, 'global_pool'),  # feature 6
        (0, 6, 3, 'sum'),  # P3 out
        (6, 7, 4, 'sum'),  # P4 out
        (7, 8, 5, 'global_pool'),  # P5 out, adds feature 5
        (8, 9, 7, 'sum'),  # P7 out, adds the unused P7
        (9, 10, 6, 'global_pool'),  # P6 out, adds the unused P6
    ])
    specs = NASFPNSpace().cell_specs(arch)
    assert [spec.unused_inputs for spec in specs] == [(), (), (), (), (5,), (4,), (3,)]

    neck = build_neck(arch)
    features = backbone_features()
    before = run(neck, features)
    with torch.no_grad():
        neck.stages[0].cells[0].out_conv.conv.weight.add_(1.0)
    after = run(neck, features)
    p3, p4, p5, p6, p7 = (not torch.allclose(a, b) for a, b in zip(before, after))
    # Cell 0 reaches P5 out (and, through it, P6 and P7) only by the addition.
    assert (p3, p4, p5, p6, p7) == (False, False, True, True, True)
