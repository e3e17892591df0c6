"""The AutoGAN networks at tiny widths: the shared generator's paths and weight
sharing, the official skip semantics, standalone generators sliced from the
shared one, and the discriminator that grows with the stage."""
import math
import random

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import nn
from torch.nn.utils import parametrize

from gan.autogan import (PRESETS, AutoGANDiscriminator, AutoGANGenerator, AutoGANSharedGenerator,
                         AutoGANTrainingModel, SharedGANSettings, SharedGANTrainer)
from gan.autogan.space import AutoGANSpace
from nas_tasks.errors import ArchError, NasError

GF = 8
BATCH = 2
SPACE = AutoGANSpace()
# Every option of every decision shows up among these (checked below).
SAMPLED = [SPACE.sample(random.Random(seed)) for seed in range(24)]
# Cells 1..3 with one option each, no skips: pre/post, every norm, every up.
EDGES = [SPACE.from_vector([c, n, u, sc, c, n, u, sc, 0, c, n, u, sc, 0])
         for c, n, u, sc in [(0, 0, 0, 0), (1, 1, 1, 1), (0, 2, 2, 1), (1, 2, 2, 0), (0, 1, 2, 1)]]
ARCHS = SAMPLED + EDGES + list(PRESETS.values())


def noise(seed=0):
    return torch.randn(BATCH, 128, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    """Tiny convs: a second intra-op thread only waits on a busy machine (100x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def shared():
    torch.manual_seed(0)
    return AutoGANSharedGenerator(gf_dim=GF)


def test_archs_cover_every_option():
    for key in SPACE.keys:
        assert {repr(arch[key]) for arch in ARCHS} == {repr(option) for option in SPACE.options(key)}, key


def test_published_sizes_match_the_sheet():
    """Parameter counts of the official files (reference sheet 1.2, 1.4), built without memory."""
    with torch.device('meta'):
        generator = AutoGANGenerator('autogan_cifar10_a', gf_dim=256)
        discriminator = AutoGANDiscriminator(df_dim=128)
    assert sum(p.numel() for p in generator.parameters()) == 4_405_251
    assert sum(p.numel() for p in discriminator.parameters()) == 1_053_824


def test_every_arch_and_stage_prefix_generates_images(shared):
    z = noise()
    for arch in ARCHS:
        for stage in range(3):
            shared.set_arch(SPACE.prefix(arch, stage))
            assert shared.cur_stage == stage
            images = shared(z)
            assert images.shape == (BATCH, 3, 8 * 2 ** stage, 8 * 2 ** stage)
            assert images.abs().max() <= 1 and images.std() > 0
    for arch in EDGES + list(PRESETS.values()):
        assert AutoGANGenerator(arch, gf_dim=GF)(z).shape == (BATCH, 3, 32, 32)


def test_the_shared_generator_needs_an_arch_and_a_standalone_one_a_whole_arch(shared):
    with pytest.raises(NasError, match='set_arch'):
        shared(noise())
    with pytest.raises(ArchError, match='needs all 3 cells'):
        AutoGANGenerator(SPACE.prefix(PRESETS['autogan_cifar10_a'], 1), gf_dim=GF)
    with pytest.raises(ArchError):
        shared.set_arch({**PRESETS['autogan_cifar10_a'], 'cell2.up': 'cubic'})


def _params_with_grad(model):
    return {name for name, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


@pytest.mark.parametrize('arch', SAMPLED[:6] + EDGES, ids=lambda arch: ''.join(map(str, SPACE.to_vector(arch))))
def test_a_path_trains_exactly_its_own_weights(shared, arch):
    """Backward through a path (out-of-place adds: autograd works) reaches exactly
    the parameters that the standalone generator of that arch holds."""
    shared.set_arch(arch)
    shared(noise()).sum().backward()
    path = {name for name, _ in AutoGANGenerator(arch, gf_dim=GF).named_parameters()}
    assert _params_with_grad(shared) == path


def test_archs_choosing_the_same_op_share_its_tensor(shared):
    a = SPACE.from_vector([1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 0, 1, 0, 3])
    b = SPACE.from_vector([1, 1, 2, 1, 0, 0, 0, 1, 1, 1, 0, 1, 0, 3])  # cell1 pre too, cell2 post
    weights_a, weights_b = shared.subnet_state_dict(a), shared.subnet_state_dict(b)
    same = 'cells.0.conv1.pre.conv.weight'
    assert weights_a[same].data_ptr() == weights_b[same].data_ptr() \
        == shared.cells[0].conv1['pre'].conv.weight.data_ptr()
    assert 'cells.1.conv1.pre.conv.weight' in weights_a and 'cells.1.conv1.pre.conv.weight' not in weights_b
    assert weights_a['cells.1.conv1.pre.conv.weight'].data_ptr() != \
        weights_b['cells.1.conv1.post.conv.weight'].data_ptr()
    # Norms, up-sampling and variants each own their modules.
    assert shared.cells[0].conv1['pre'].conv is not shared.cells[0].conv1['post'].conv
    assert shared.cells[0].conv1['pre'].norms['bn'] is not shared.cells[0].conv2['pre'].norms['bn']
    assert shared.cells[0].conv1['pre'].deconv is not shared.cells[0].conv1['post'].deconv
    assert set(shared.cells[2].skip_deconvs) == {'x2', 'x4'} and set(shared.cells[1].skip_deconvs) == {'x2'}


@pytest.mark.parametrize('up', ['nearest', 'bilinear', 'deconv'])
def test_the_skip_feature_carries_the_skip_inputs(shared, up):
    """A cell's exported skip feature is its conv1 output plus the skip terms it
    received (the official aliasing), and the terms are the resized skip
    features through the per-source 1x1 convs."""
    shared.eval()
    cells = {f'cell{i}.{d}': v for i in (1, 2, 3) for d, v in
             (('conv', 'pre'), ('norm', 'bn'), ('up', up), ('shortcut', True))}
    skips_off = {'cell2.skip_from_cell1': False, 'cell3.skip_from_cell1': False, 'cell3.skip_from_cell2': False}
    skips_on = {key: True for key in skips_off}
    z = noise(1)
    with torch.no_grad():
        shared.set_arch({**cells, **skips_off})
        off = shared.cell_outputs(z)
        shared.set_arch({**cells, **skips_on})
        on = shared.cell_outputs(z)
        cell2, cell3 = shared.cells[1], shared.cells[2]

        def term(cell, source, feature, size):
            if up == 'deconv':
                resized = cell.skip_deconvs[f'x{size // feature.shape[-1]}'](feature)
            else:
                resized = F.interpolate(feature, size=(size, size), mode=up)
            return cell.skip_in_ops[f'cell{source}'](resized)

        assert torch.equal(on[0].skip, off[0].skip) and torch.equal(on[0].out, off[0].out)
        added2 = term(cell2, 1, on[0].skip, 16)
        assert added2.abs().sum() > 0
        assert torch.equal(on[1].skip, off[1].skip + added2)
        assert not torch.equal(on[1].out, off[1].out)  # conv2 sees the skip inputs
        # Cell 3's inputs differ (cell 2 changed), so rebuild its skip-free feature on the same input.
        conv1_only = cell3.conv1['pre'](on[1].out, 'bn', up)
        assert torch.equal(on[2].skip, conv1_only + term(cell3, 1, on[0].skip, 32) + term(cell3, 2, on[1].skip, 32))


@pytest.mark.parametrize('arch', list(PRESETS.values()) + EDGES + SAMPLED[:4],
                         ids=lambda arch: ''.join(map(str, SPACE.to_vector(arch))))
def test_standalone_generator_with_sliced_weights_equals_the_shared_path(shared, arch):
    shared.set_arch(arch)
    with torch.no_grad():
        shared(noise(2))  # train mode: moves the BN running statistics away from their init
    shared.eval()
    standalone = AutoGANGenerator(arch, gf_dim=GF).eval()
    standalone.load_state_dict(shared.subnet_state_dict(arch))  # strict: names match exactly
    z = noise(3)
    with torch.no_grad():
        assert torch.equal(standalone(z), shared(z))
    shared.set_arch({**arch, 'cell3.shortcut': not arch['cell3.shortcut']})
    with torch.no_grad():
        assert not torch.equal(standalone(z), shared(z))


def test_standalone_generator_holds_only_its_ops_and_builds_from_the_registry():
    generator = MODELS.build(dict(type='AutoGANGenerator', arch='autogan_cifar10_c', gf_dim=GF))
    names = set(generator.state_dict())
    assert 'cells.0.conv1.pre.norms.bn.weight' in names  # cell1 uses BN
    assert not any('.post.' in n or 'deconv' in n for n in names)
    assert not any(n.startswith(('cells.1.', 'cells.2.')) and '.bn.' in n for n in names)
    assert 'cells.2.c_sc.weight' not in names and 'cells.1.c_sc.weight' in names  # shortcuts as in c
    assert {n for n in names if 'skip_in_ops' in n} == {
        'cells.1.skip_in_ops.cell1.weight', 'cells.1.skip_in_ops.cell1.bias',
        'cells.2.skip_in_ops.cell1.weight', 'cells.2.skip_in_ops.cell1.bias',
        'cells.2.skip_in_ops.cell2.weight', 'cells.2.skip_in_ops.cell2.bias'}
    assert isinstance(MODELS.build(dict(type='AutoGANSharedGenerator', gf_dim=GF)), AutoGANSharedGenerator)


def test_discriminator_grows_with_the_stage():
    torch.manual_seed(0)
    discriminator = MODELS.build(dict(type='AutoGANDiscriminator', df_dim=GF, cur_stage=0))
    blocks_used = {0: {'block1', 'block4', 'l5'}, 1: {'block1', 'block2', 'block4', 'l5'},
                   2: {'block1', 'block2', 'block3', 'block4', 'l5'}}
    for stage, used in blocks_used.items():
        discriminator.zero_grad(set_to_none=True)
        discriminator.cur_stage = stage
        size = 8 * 2 ** stage
        scores = discriminator(torch.randn(BATCH, 3, size, size))
        assert scores.shape == (BATCH, 1)
        scores.sum().backward()
        assert {name.split('.')[0] for name in _params_with_grad(discriminator)} == used
    with pytest.raises(NasError, match='stages 0..2'):
        discriminator.cur_stage = 3


def test_discriminator_sum_pools_and_has_spectral_norm_everywhere():
    discriminator = AutoGANDiscriminator(df_dim=GF)
    layers = [m for m in discriminator.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(layers) == 3 + 3 + 2 + 2 + 1
    assert all(parametrize.is_parametrized(layer, 'weight') for layer in layers)
    assert discriminator.l5.bias is None
    # Sum (not mean) pooling: a constant feature map of twice the area doubles the score.
    features = {}
    discriminator.block4.register_forward_hook(lambda module, args, out: features.setdefault('h', out))
    with torch.no_grad():
        score = discriminator(torch.randn(1, 3, 32, 32))
        assert torch.allclose(score, discriminator.l5(F.relu(features['h']).sum(dim=(2, 3))))


def test_weights_of_another_architecture_are_refused_even_by_a_non_strict_load():
    """mmengine loads checkpoints non-strictly: the recorded architecture stops a
    test of the wrong generator from scoring half-initialised weights."""
    a = AutoGANGenerator('autogan_cifar10_a', gf_dim=GF)
    weights = a.state_dict()
    assert weights['arch_vector'].tolist() == [1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 0, 1, 0, 3]
    AutoGANGenerator('autogan_cifar10_a', gf_dim=GF).load_state_dict(weights)
    with pytest.raises(ArchError, match='these weights are of the generator 1 0 1 1 1 0 0 1 1 1 0 1 0 3'):
        AutoGANGenerator('autogan_cifar10_b', gf_dim=GF).load_state_dict(weights, strict=False)


def _search_networks():
    trainer = SharedGANTrainer(SharedGANSettings(gf_dim=GF, df_dim=64))
    return trainer.generator, trainer.discriminator


def _final_training_networks():
    model = AutoGANTrainingModel(
        generator=dict(type='AutoGANGenerator', arch='autogan_cifar10_a', gf_dim=GF),
        discriminator=dict(type='AutoGANDiscriminator', df_dim=64))
    return model.generator, model.discriminator


def _xavier_bound(conv):
    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(conv.weight)
    return math.sqrt(6 / (fan_in + fan_out))


@pytest.mark.parametrize('build', [_search_networks, _final_training_networks], ids=['search', 'final'])
def test_every_conv_starts_xavier_uniform_spectral_normed_ones_too(build):
    """The official weights_init (xavier-uniform, gain 1) reaches every Conv2d, the
    discriminator's spectral-normed ones included (torch's ParametrizedConv2d is
    no ``type(...) is nn.Conv2d``: those kept torch's default init, about 1.7x
    smaller on the 3x3 convs); transposed convs and linear layers keep the default,
    as the official name test ('Conv2d' in the class name) leaves them."""
    torch.manual_seed(0)
    generator, discriminator = build()
    convs = [(name, m) for name, m in discriminator.named_modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 10 and all(parametrize.is_parametrized(m, 'weight') for _, m in convs)
    convs += [(name, m) for name, m in generator.named_modules() if isinstance(m, nn.Conv2d)]
    for name, conv in convs:
        raw = conv.parametrizations.weight.original if parametrize.is_parametrized(conv) else conv.weight
        bound = _xavier_bound(conv)
        default_bound = 1 / math.sqrt(nn.init._calculate_fan_in_and_fan_out(raw)[0])  # torch's kaiming(a=sqrt 5)
        # The test can tell them apart: torch's default differs from xavier's by > 25% on every conv here.
        assert abs(default_bound / bound - 1) > 0.25, name
        assert raw.abs().max() <= bound, name
        assert raw.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1), name  # U(-b, b): std b/sqrt 3
    for _, conv in convs[:10]:
        # The power iteration restarted on the new weights: the norm spectral norm divides by is theirs.
        norm = conv.parametrizations.weight[0]
        matrix = norm._reshape_weight_to_matrix(conv.parametrizations.weight.original).detach()
        estimate = norm._u @ matrix @ norm._v
        assert estimate.item() == pytest.approx(torch.linalg.matrix_norm(matrix, 2).item(), rel=0.1)
    untouched = [m for m in list(generator.modules()) + list(discriminator.modules())
                 if isinstance(m, (nn.Linear, nn.ConvTranspose2d))]
    assert untouched
    for layer in untouched:
        raw = layer.parametrizations.weight.original if parametrize.is_parametrized(layer) else layer.weight
        default_bound = 1 / math.sqrt(nn.init._calculate_fan_in_and_fan_out(raw)[0])
        assert raw.abs().max() <= default_bound
