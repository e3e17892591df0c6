"""Auto-DeepLab model side: search network, decoding, arch documents, derived backbone."""
import itertools
import json

import pytest
import torch

from backbones.auto_deeplab import (PRESETS, PRIMITIVES, AutoDeepLabBackbone,
                                    AutoDeepLabSearchNet, decode_genotype, save_arch_document,
                                    viterbi_path)
from backbones.auto_deeplab.arch import (AUTO_DEEPLAB_SPACE, PUBLISHED_CELL, PUBLISHED_PATH,
                                         edge_index, levels_at)
from backbones.auto_deeplab.ops import level_sizes
from backbones.auto_deeplab.pictures import draw_genotype, draw_path
from backbones.auto_deeplab.search_network import TO_COARSER, TO_FINER, beta_mask
from nas_tasks.architectures import resolve_arch
from nas_tasks.errors import ArchError, NasError

torch.set_num_threads(2)


def tiny_search_net(**kwargs) -> AutoDeepLabSearchNet:
    options = dict(num_classes=3, num_layers=3, filter_multiplier=2, block_multiplier=5, seed=0)
    options.update(kwargs)
    torch.manual_seed(0)
    return AutoDeepLabSearchNet(**options)


def randomize_arch_logits(net: AutoDeepLabSearchNet, seed: int = 1) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for logits in net.arch_params.logits.values():
            logits.copy_(torch.randn(logits.shape, generator=generator))


# -- search network ----------------------------------------------------------

def test_arch_weights_are_normalised_and_invalid_transitions_are_zero():
    net = tiny_search_net(num_layers=5)
    randomize_arch_logits(net)
    weights = net.arch_weights()
    alpha, beta = weights['alpha'], weights['beta']
    assert alpha.shape == (20, len(PRIMITIVES)) and beta.shape == (5, 4, 3)
    torch.testing.assert_close(alpha.sum(-1), torch.ones(20))
    mask = beta_mask(5)
    assert torch.all(beta[~mask] == 0)
    assert torch.all(beta[mask] > 0)
    valid_rows = mask.any(-1)
    torch.testing.assert_close(beta.sum(-1)[valid_rows], torch.ones(int(valid_rows.sum())))
    assert torch.all(beta.sum(-1)[~valid_rows] == 0)
    # Layer 0 leaves the stem (level 0) only: same level or down to stride 8.
    assert mask[0].nonzero().tolist() == [[0, 1], [0, 2]]
    # Layer 2 leaves levels 0..2 of layer 1; level 0 cannot go finer, nothing from level 3.
    assert mask[2, :3].sum() == 8 and not mask[2, 3].any()
    # Level 3 cannot go coarser.
    assert not mask[4, 3, TO_COARSER] and mask[4, 3, TO_FINER]


def test_search_forward_shape_and_backward_reaches_alpha_and_beta():
    net = tiny_search_net()
    assert {key for key in net.cells} == {f'{layer}_{level}' for layer in range(3)
                                          for level in levels_at(layer)}
    assert all(len(cell.edges) == 20 for cell in net.cells.values())
    images = torch.randn(2, 3, 32, 32)
    logits = net(images)
    assert logits.shape == (2, 3, 32, 32)
    logits.square().mean().backward()
    alpha_grad = net.arch_params.logits['alpha'].grad
    beta_grad = net.arch_params.logits['beta'].grad
    assert alpha_grad is not None and torch.all(alpha_grad.abs().sum(-1) > 0)
    mask = beta_mask(3)
    # Every valid transition influences the logits; invalid ones get no gradient.
    assert torch.all(beta_grad[mask] != 0) and torch.all(beta_grad[~mask] == 0)
    assert len(net.arch_parameters()) == 2
    assert len(net.weight_parameters()) == len(list(net.parameters())) - 2


def _forward_backward(net, images):
    net.zero_grad()
    out = net(images)
    out.square().mean().backward()
    grads = {name: p.grad.clone() for name, p in net.named_parameters() if p.grad is not None}
    return out.detach(), grads


@pytest.mark.parametrize('single_path', [False, True])
def test_checkpointing_gives_the_same_outputs_gradients_and_statistics(single_path):
    plain = tiny_search_net(block_multiplier=3, single_path=single_path)
    checkpointed = tiny_search_net(block_multiplier=3, with_cp=True, single_path=single_path)
    if single_path:
        for net in (plain, checkpointed):
            net.arch_params.resample(step=3)
    randomize_arch_logits(plain)
    checkpointed.load_state_dict(plain.state_dict())
    images = torch.randn(2, 3, 32, 32)
    out_plain, grads_plain = _forward_backward(plain, images)
    out_cp, grads_cp = _forward_backward(checkpointed, images)
    torch.testing.assert_close(out_cp, out_plain, rtol=0, atol=0)
    assert grads_cp.keys() == grads_plain.keys()
    assert 'arch_params.logits.alpha' in grads_cp
    for name in grads_plain:
        torch.testing.assert_close(grads_cp[name], grads_plain[name], rtol=1e-5, atol=1e-7,
                                   msg=name)
    # Recomputation in backward must not update the BN statistics a second time.
    for (name, a), (_, b) in zip(plain.state_dict().items(), checkpointed.state_dict().items()):
        torch.testing.assert_close(b, a, rtol=0, atol=0, msg=name)


def test_single_path_runs_only_the_sampled_op_of_every_edge():
    net = tiny_search_net(block_multiplier=3, single_path=True)
    net.arch_params.resample(7)
    active = net.arch_params.sampled_indices('alpha').tolist()
    ran = []
    for cell in net.cells.values():
        for edge_number, edge in enumerate(cell.edges):
            for op_number, op in enumerate(edge.candidates):
                op.register_forward_hook(
                    lambda *_, e=edge_number, o=op_number: ran.append((e, o)))
    net(torch.randn(2, 3, 32, 32)).mean().backward()
    assert ran and set(ran) == {(edge, active[edge]) for edge in range(9)}
    assert net.arch_params.logits['alpha'].grad.abs().sum() > 0   # straight-through


# -- decoding ----------------------------------------------------------------

def _greedy_path(beta):
    level, path = 0, []
    for layer in beta:
        direction = max(range(3), key=lambda d: layer[level][d])
        level += direction - 1
        path.append(level)
    return path


def _transition_table(layers):
    """[L, 4, 3] with the given {(layer, level): (to finer, same, to coarser)} rows."""
    beta = torch.zeros(len(layers), 4, 3)
    for layer, rows in enumerate(layers):
        for level, row in rows.items():
            beta[layer, level] = torch.tensor(row)
    return beta


def test_viterbi_beats_greedy_where_the_best_path_starts_with_a_weaker_step():
    beta = _transition_table([
        {0: (0, 0.6, 0.4)},
        {0: (0, 0.5, 0.5), 1: (0.1, 0.1, 0.8)},
        {0: (0, 0.5, 0.5), 1: (0.3, 0.4, 0.3), 2: (0.05, 0.9, 0.05)},
    ])
    assert _greedy_path(beta.tolist()) == [0, 0, 0]        # 0.6 * 0.5 * 0.5 = 0.15
    assert viterbi_path(beta) == [1, 2, 2]                  # 0.4 * 0.8 * 0.9 = 0.288


def test_viterbi_follows_a_dominant_path_and_matches_brute_force():
    rows = [{level: (0.05, 0.05, 0.9) if level < 3 else (0.05, 0.9, 0) for level in range(4)}
            for _ in range(5)]
    assert viterbi_path(_transition_table(rows)) == [1, 2, 3, 3, 3]

    net = tiny_search_net(num_layers=6)
    randomize_arch_logits(net, seed=3)
    beta = net.arch_weights()['beta'].detach()
    best, best_path = -1.0, None
    for moves in itertools.product((-1, 0, 1), repeat=6):
        level, probability, path = 0, 1.0, []
        for layer, move in enumerate(moves):
            if not 0 <= level + move <= 3:
                probability = -1.0
                break
            probability *= float(beta[layer, level, move + 1])
            level += move
            path.append(level)
        if probability > best:
            best, best_path = probability, path
    assert viterbi_path(beta) == best_path


def test_genotype_keeps_the_two_strongest_edges_and_never_none():
    alpha = torch.full((20, len(PRIMITIVES)), 0.02)
    expected = []
    for block in range(5):
        pair = PUBLISHED_CELL[2 * block:2 * block + 2]
        for rank, (source, op) in enumerate(pair):
            alpha[edge_index(block, source), PRIMITIVES.index(op)] = 0.5 + 0.1 * rank
        expected += sorted([list(entry) for entry in pair])
        # A decoy edge whose 'none' weight is the largest of the block: 'none'
        # does not count, so its best real op (0.3) loses to the two kept edges.
        unused = [s for s in range(block + 2) if s not in {source for source, _ in pair}]
        for decoy in unused[:1]:
            alpha[edge_index(block, decoy), PRIMITIVES.index('none')] = 0.95
            alpha[edge_index(block, decoy), PRIMITIVES.index('max_pool_3x3')] = 0.3
    # On a kept edge 'none' may be the strongest op; the best other op is taken.
    alpha[edge_index(0, 0), PRIMITIVES.index('none')] = 0.99
    cell = decode_genotype(alpha)
    assert cell == expected
    assert cell[:2] == [[0, 'dil_conv_5x5'], [1, 'sep_conv_3x3']]
    assert all(op != 'none' for _, op in cell)
    arch = dict(cell=cell, path=[0, 1], filter_multiplier=4)
    assert resolve_arch(arch, AUTO_DEEPLAB_SPACE)['cell'] == cell


# -- arch documents ----------------------------------------------------------
@pytest.mark.parametrize('change, key', [
    (dict(path=[0, 1, 4]), 'path'),
    (dict(path=[0, 2]), 'path'),
    (dict(path=[2, 2]), 'path'),
    (dict(path=[]), 'path'),
    (dict(cell=[[0, 'none'], [1, 'skip_connect']]), 'cell'),
    (dict(cell=[[0, 'conv_7x7'], [1, 'skip_connect']]), 'cell'),
    (dict(cell=[[2, 'sep_conv_3x3'], [1, 'skip_connect']]), 'cell'),
    (dict(cell=[[0, 'sep_conv_3x3']]), 'cell'),
    (dict(filter_multiplier=0), 'filter_multiplier'),
    (dict(filter_multiplier=True), 'filter_multiplier'),
    (dict(blocks=5), 'blocks'),
])
def test_invalid_arch_is_rejected_naming_the_key(change, key):
    arch = {**PRESETS['autodeeplab_s'], **change}
    with pytest.raises(ArchError, match=f"'{key}'"):
        resolve_arch(arch, AUTO_DEEPLAB_SPACE)


def test_missing_key_and_unknown_source_are_named():
    arch = dict(PRESETS['autodeeplab_s'])
    del arch['path']
    with pytest.raises(ArchError, match="'path'"):
        resolve_arch(arch, AUTO_DEEPLAB_SPACE)
    with pytest.raises(NasError, match='autodeeplab_s'):
        resolve_arch('no_such_preset_or_file.json', AUTO_DEEPLAB_SPACE)


def test_arch_document_round_trip_and_wrong_space(tmp_path):
    arch = dict(cell=[[1, 'sep_conv_3x3'], [0, 'skip_connect']], path=[1, 2, 3, 3],
                filter_multiplier=4)
    file = tmp_path / 'best_arch.json'
    save_arch_document(file, arch, {'mIoU': 0.5})
    document = json.loads(file.read_text())
    assert document == {'space': 'auto-deeplab', 'version': 1, 'arch': arch,
                        'metrics': {'mIoU': 0.5}}
    assert resolve_arch(file, AUTO_DEEPLAB_SPACE) == arch
    assert AutoDeepLabBackbone(str(file)).arch == arch
    file.write_text(json.dumps({**document, 'space': 'detnas-small'}))
    with pytest.raises(ArchError, match='detnas-small'):
        resolve_arch(file, AUTO_DEEPLAB_SPACE)
    with pytest.raises(ArchError, match="'path'"):
        save_arch_document(tmp_path / 'bad.json', {**arch, 'path': [3]})
    assert not (tmp_path / 'bad.json').exists()


# -- derived network ---------------------------------------------------------

@pytest.mark.parametrize('preset, multiplier', [('autodeeplab_s', 20), ('autodeeplab_m', 32),
                                                ('autodeeplab_l', 48)])
def test_presets_build_with_the_paper_channels_and_strides(preset, multiplier):
    assert PRESETS[preset]['path'] == list(PUBLISHED_PATH)
    backbone = AutoDeepLabBackbone(preset)
    assert backbone.out_indices == (3, 12)                  # cell 2 and the last cell
    assert backbone.out_strides == (4, 8)                   # the path ends at level 1
    assert backbone.out_channels == (5 * multiplier, 10 * multiplier)
    with torch.no_grad():
        low, last = backbone.eval()(torch.randn(1, 3, 65, 65))
    assert low.shape == (1, 5 * multiplier, 17, 17)
    assert last.shape == (1, 10 * multiplier, 9, 9)


def test_every_feature_has_the_stride_and_channels_of_its_level():
    backbone = AutoDeepLabBackbone('autodeeplab_s', filter_multiplier=4,
                                   out_indices=range(13)).eval()
    sizes = level_sizes((17, 17), 4)
    with torch.no_grad():
        features = backbone(torch.randn(1, 3, 65, 65))
    levels = [0, *PUBLISHED_PATH]
    for index, feature in enumerate(features):
        channels = 128 if index == 0 else 5 * 4 * 2 ** levels[index]
        assert feature.shape == (1, channels, *sizes[levels[index]]), index
        assert backbone.out_strides[index] == 4 * 2 ** levels[index]
        assert torch.all(feature >= 0)                       # returned after a ReLU


def test_a_path_ending_at_stride_32_and_checkpointing():
    arch = dict(cell=[list(entry) for entry in PUBLISHED_CELL], path=[1, 2, 3, 3],
                filter_multiplier=4)
    torch.manual_seed(0)
    backbone = AutoDeepLabBackbone(arch)
    torch.manual_seed(0)
    checkpointed = AutoDeepLabBackbone(arch, with_cp=True)
    assert backbone.out_indices == (0, 4)                   # no stride-4 cell: the stem
    assert backbone.out_strides == (4, 32) and backbone.out_channels == (128, 160)
    images = torch.randn(2, 3, 64, 64)
    outputs = [model(images) for model in (backbone, checkpointed)]
    assert outputs[0][1].shape == (2, 160, 2, 2)
    torch.testing.assert_close(outputs[1][1], outputs[0][1], rtol=0, atol=0)
    for out, model in zip(outputs, (backbone, checkpointed)):
        out[1].sum().backward()
    for (name, a), (_, b) in zip(backbone.named_parameters(), checkpointed.named_parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-5, atol=1e-6, msg=name)


def test_backbone_is_in_both_registries_and_builds_an_mmseg_deeplabv3plus():
    import mmseg.models  # noqa: F401  (registers EncoderDecoder and the heads)
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS as MMSEG_MODELS
    from mmseg.structures import SegDataSample
    from mmengine.structures import PixelData

    assert MMSEG_MODELS.get('AutoDeepLabBackbone') is AutoDeepLabBackbone
    assert MMDET_MODELS.get('AutoDeepLabBackbone') is AutoDeepLabBackbone
    backbone = AutoDeepLabBackbone('autodeeplab_s', filter_multiplier=4)
    low_channels, last_channels = backbone.out_channels
    # mmseg's DepthwiseSeparableASPPHead takes its low-level feature from
    # inputs[0] and the ASPP input from inputs[in_index].
    model_cfg = dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
                               seg_pad_val=255),
        backbone=dict(type='AutoDeepLabBackbone', arch='autodeeplab_s', filter_multiplier=4),
        decode_head=dict(type='DepthwiseSeparableASPPHead', in_channels=last_channels,
                         in_index=1, channels=16, dilations=(1, 12, 24, 36),
                         c1_in_channels=low_channels, c1_channels=8, dropout_ratio=0.1,
                         num_classes=5, norm_cfg=dict(type='BN'), align_corners=False,
                         loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0)),
        test_cfg=dict(mode='whole'))
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MMSEG_MODELS.build(model_cfg)
    images = torch.randn(2, 3, 64, 64)
    samples = []
    for _ in range(2):
        sample = SegDataSample(gt_sem_seg=PixelData(data=torch.randint(0, 5, (1, 64, 64))))
        sample.set_metainfo(dict(img_shape=(64, 64), ori_shape=(64, 64)))
        samples.append(sample)
    losses = model(images, samples, mode='loss')
    assert torch.isfinite(losses['decode.loss_ce'])
    model.eval()
    with torch.no_grad():
        logits = model.encode_decode(images, [dict(img_shape=(64, 64))] * 2)
    assert logits.shape == (2, 5, 64, 64)


def test_pictures_are_written(tmp_path):
    draw_path(PUBLISHED_PATH, tmp_path / 'path.png')
    draw_genotype(PUBLISHED_CELL, tmp_path / 'cell.png')
    for name in ('path.png', 'cell.png'):
        data = (tmp_path / name).read_bytes()
        assert data.startswith(b'\x89PNG') and len(data) > 5000
    assert sorted(p.name for p in tmp_path.iterdir()) == ['cell.png', 'path.png']
    with pytest.raises(ArchError, match="'path'"):
        draw_path([0, 3], tmp_path / 'bad.png')
