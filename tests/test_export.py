"""tools/export.py: a found model as a plain mmdet/mmseg config, its weights and ONNX,
each written only after its parity check passes.

The work dirs are made here as the searches leave them (arch document, weights),
without running searches; weights are randomised so that a wrong mapping shows.
"""
import random
import re
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import load_checkpoint

from conftest import openmmlab_tool, randomize_batch_norms, run_tool
from nas_tasks.errors import NasError

DETNAS_SEARCH = 'configs/detnas/detnas_retinanet_toy.py'
NAS_FPN_FINETUNE = 'configs/nas_fpn/retinanet_nas_fpn_finetune_toy.py'
AUTO_DEEPLAB_FINETUNE = 'configs/auto_deeplab/auto_deeplab_finetune_toy.py'
FNA_FINETUNE = 'configs/fna/retinanet_fna_finetune_toy.py'
AUTOGAN_SEARCH = 'configs/autogan/autogan_cifar10_toy.py'
DETNAS_ARCH_SEED = 3


@pytest.fixture(scope='module', autouse=True)
def registered():
    from nas_tasks.modules import register_all_modules
    register_all_modules()


def build(cfg, scope):
    """``cfg.model`` from the task library's own registry (mmdet's, mmseg's; a GAN
    generator's is mmengine's)."""
    if scope == 'mmdet':
        from mmdet.registry import MODELS
    elif scope == 'mmseg':
        from mmseg.registry import MODELS
    else:
        from mmengine.registry import MODELS
    with DefaultScope.overwrite_default_scope(scope):
        return MODELS.build(cfg.model)


def plain_model(out: Path, scope: str):
    """The exported config built by the task library, with the exported weights."""
    cfg = Config.fromfile(str(out / 'config.py'))
    assert cfg.default_scope == scope
    model = build(cfg, scope)
    load_checkpoint(model, str(out / 'weights.pth'), map_location='cpu', strict=True)
    return model.eval()


def tensor_mode(model, inputs):
    return model(inputs, mode='tensor')


def assert_onnxruntime_matches(out: Path, model, manifest: dict, forward=tensor_mode) -> None:
    """onnxruntime on the written ONNX file computes what the rebuilt model computes."""
    from nas_tasks.export.parity import ATOL, RTOL, flatten_outputs
    inputs = torch.randn(*manifest['input']['shape'], generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        expected = flatten_outputs(forward(model, inputs))
    session = onnxruntime.InferenceSession(str(out / 'model.onnx'), providers=['CPUExecutionProvider'])
    actual = session.run(None, {manifest['input']['name']: inputs.numpy()})
    assert [name for name, _ in expected] == [o.name for o in session.get_outputs()]
    assert any(float(tensor.abs().max()) > 0.05 for _, tensor in expected), 'trivial outputs'
    for (name, tensor), array in zip(expected, actual):
        tolerance = ATOL + RTOL * float(tensor.abs().max())
        assert np.abs(array - tensor.numpy()).max() <= tolerance, name


def assert_both_parity_checks_printed(lines: list[str], manifest: dict) -> None:
    torch_line, ort_line = (next(line for line in lines if line.startswith(f'parity ({which})'))
                            for which in ('PyTorch', 'onnxruntime'))
    outputs = len(manifest['outputs'])
    assert f'{outputs} outputs' in torch_line and 'torch.equal on every one (max |diff| 0)' in torch_line
    assert re.search(r'max \|diff\| [0-9.e+-]+, values up to [0-9.e+-]+', ort_line), ort_line
    parity = manifest['parity']
    assert parity['pytorch']['max_abs_diff'] == 0.0 and parity['pytorch']['outputs'] == outputs
    ort = parity['onnxruntime']
    assert ort['max_abs_diff'] <= ort['atol'] + ort['rtol'] * ort['max_abs_value']
    assert sorted(p.name for p in manifest_dir(manifest).iterdir()) == [
        'config.py', 'export.json', 'model.onnx', 'weights.pth']


def manifest_dir(manifest: dict) -> Path:
    return Path(manifest['out'])


def run_export(source, task, out, **options):
    from nas_tasks.export import export_found_model
    lines = []
    manifest = export_found_model(source, task, out, log=lines.append, **options)
    manifest['out'] = str(out)
    return manifest, lines


def assert_no_search_in(out: Path, work_dir: Path, *names: str) -> str:
    text = (out / 'config.py').read_text()
    assert str(work_dir) not in text and 'best_arch.json' not in text and 'search_dir' not in text
    for name in names:
        assert name not in text
    return text


# -- DetNAS: the supernet path --------------------------------------------------------
def save_detnas_work_dir(work_dir: Path, supernet_seed: int) -> dict:
    """supernet/supernet_final.pth, best_arch.json and best_subnet.pth as the DetNAS
    search writes them; best_subnet's BN statistics differ from the supernet's, as
    after recalibration. Returns the arch."""
    from backbones.detnas import subnet_state_dict
    from detection.detnas.space import DetNASSpace
    from nas_tasks.builder import load_config
    torch.manual_seed(supernet_seed)
    detector = build(load_config(DETNAS_SEARCH), 'mmdet')
    detector.init_weights()
    randomize_batch_norms(detector, supernet_seed)
    (work_dir / 'supernet').mkdir(parents=True)
    torch.save(detector.state_dict(), work_dir / 'supernet' / 'supernet_final.pth')
    space = DetNASSpace('small')
    arch = space.sample(random.Random(DETNAS_ARCH_SEED))
    space.save_arch(work_dir / 'best_arch.json', arch, {'bbox_mAP': 0.5})
    subnet = subnet_state_dict(detector.backbone.state_dict(), arch, 'small')
    for key in subnet:
        if key.endswith('running_mean'):
            subnet[key] = subnet[key] + 0.25  # recalibrated statistics
    torch.save(dict(state_dict=subnet, meta=dict(space='detnas-small', space_version=1, arch=arch)),
               work_dir / 'best_subnet.pth')
    return arch


@pytest.fixture(scope='module')
def detnas_export(tmp_path_factory, toy_coco):
    work_dir = tmp_path_factory.mktemp('detnas_search')
    arch = save_detnas_work_dir(work_dir, supernet_seed=1)
    out = tmp_path_factory.mktemp('detnas_export') / 'out'
    manifest, lines = run_export(work_dir, DETNAS_SEARCH, out, exporter='torchscript',
                                 cfg_options={'data_root': str(toy_coco)})
    return work_dir, arch, out, manifest, lines


def test_detnas_export_computes_the_supernet_path(detnas_export):
    work_dir, arch, out, manifest, lines = detnas_export
    assert_both_parity_checks_printed(lines, manifest)
    assert 'supernet path' in manifest['reference'] and manifest['onnx']['exporter'] == 'torchscript'
    assert_no_search_in(out, work_dir, 'DetNASSuperNet', 'supernet_final', 'best_subnet')
    cfg = Config.fromfile(str(out / 'config.py'))
    assert cfg.model.backbone.type == 'DetNASBackbone'
    assert cfg.model.backbone.arch.arch == arch and cfg.model.backbone.arch.space == 'detnas-small'
    assert 'search_space' not in cfg and 'estimator' not in cfg

    # Backbone: best_subnet.pth, recalibrated statistics included; the rest: the supernet's.
    exported = torch.load(out / 'weights.pth', weights_only=True)['state_dict']
    subnet = torch.load(work_dir / 'best_subnet.pth', weights_only=True)['state_dict']
    supernet = torch.load(work_dir / 'supernet' / 'supernet_final.pth', weights_only=True)
    key = 'layers.0.branch.1.running_mean'
    assert torch.equal(exported['backbone.' + key], subnet[key])
    assert not torch.equal(subnet[key], supernet[key.replace('layers.0.', 'backbone.layers.0.choices.'
                                                              f'{_choice(arch)}.')])
    assert torch.equal(exported['bbox_head.retina_cls.weight'], supernet['bbox_head.retina_cls.weight'])
    assert_onnxruntime_matches(out, plain_model(out, 'mmdet'), manifest)


def _choice(arch: dict) -> int:
    from backbones.detnas import CHOICE_NAMES
    return CHOICE_NAMES.index(arch['layer00'])


def test_exported_detector_tests_with_mmdet_tools(detnas_export, toy_coco):
    _, _, out, _, _ = detnas_export
    tested = run_tool(['python', openmmlab_tool('mmdet', 'test'), str(out / 'config.py'),
                       str(out / 'weights.pth'), '--work-dir', str(out.parent / 'test'),
                       '--cfg-options', 'model.test_cfg.score_thr=0.0'], check=True)
    output = tested.stdout + tested.stderr
    assert re.search(r'coco/bbox_mAP: \d', output)
    assert 'Loads checkpoint' in output and 'do not match exactly' not in output


def test_mismatched_subnet_weights_are_refused_in_one_line(detnas_export, tmp_path):
    """best_subnet.pth of the same arch from another supernet: loads, but is not
    what the supernet path computes."""
    work_dir, arch, *_ = detnas_export
    other = tmp_path / 'other'
    assert save_detnas_work_dir(other, supernet_seed=2) == arch
    (other / 'supernet' / 'supernet_final.pth').write_bytes(
        (work_dir / 'supernet' / 'supernet_final.pth').read_bytes())
    out = tmp_path / 'out'
    refused = run_tool(['python', 'tools/export.py', str(other), '--task', DETNAS_SEARCH,
                        '--out', str(out), '--exporter', 'torchscript'])
    assert refused.returncode == 2
    error = [line for line in refused.stderr.splitlines() if line.startswith('error:')]
    assert len(error) == 1 and 'parity check failed' in error[0] and 'supernet path' in error[0]
    assert 'nothing was written' in error[0] and 'Traceback' not in refused.stderr
    assert not out.exists()


def test_corrupted_weights_are_refused(detnas_export, tmp_path):
    work_dir, *_ = detnas_export
    broken = tmp_path / 'broken'
    broken.mkdir()
    for name in ('best_arch.json', 'best_subnet.pth'):
        (broken / name).write_bytes((work_dir / name).read_bytes())
    (broken / 'supernet').mkdir()
    data = (work_dir / 'supernet' / 'supernet_final.pth').read_bytes()
    (broken / 'supernet' / 'supernet_final.pth').write_bytes(data[:len(data) // 2])
    with pytest.raises(NasError, match=r'cannot read checkpoint .*supernet_final\.pth') as error:
        run_export(broken, DETNAS_SEARCH, tmp_path / 'out', exporter='torchscript')
    assert '\n' not in str(error.value) and not (tmp_path / 'out').exists()


# -- NAS-FPN: no weights from the search -----------------------------------------------
@pytest.mark.slow  # the dynamo exporter
def test_nas_fpn_export_with_the_fine_tuning_init(tmp_path):
    from detection.nas_fpn.space import NASFPNSpace
    space = NASFPNSpace()
    arch = space.sample(random.Random(5))
    space.save_arch(tmp_path / 'best_arch.json', arch, {'bbox_mAP': 0.1})
    out = tmp_path / 'out'
    # The dynamo exporter (the default): the legacy tracer cannot export mmcv's merge cells.
    manifest, lines = run_export(tmp_path, NAS_FPN_FINETUNE, out)
    assert_both_parity_checks_printed(lines, manifest)
    assert manifest['onnx']['exporter'] == 'dynamo'
    assert 'no weights from the search' in manifest['weights']
    assert_no_search_in(out, tmp_path)
    cfg = Config.fromfile(str(out / 'config.py'))
    assert cfg.model.neck.type == 'SearchableNASFPN' and cfg.model.neck.stack_times == 3
    assert cfg.model.neck.arch.arch == arch
    assert_onnxruntime_matches(out, plain_model(out, 'mmdet'), manifest)


# -- Auto-DeepLab: mmseg's EncoderDecoder -----------------------------------------------
def test_auto_deeplab_export_is_a_plain_encoder_decoder(tmp_path):
    from backbones.auto_deeplab import PRESETS, save_arch_document
    from nas_tasks.builder import load_config
    arch = dict(PRESETS['autodeeplab_s'], path=[0, 1, 2, 2, 1, 2])  # ends at stride 16
    save_arch_document(tmp_path / 'best_arch.json', arch, {'mIoU': 1.0})
    # A trained segmentor (--checkpoint): the derived network's weights, randomised.
    torch.manual_seed(0)
    segmentor = build(load_config(AUTO_DEEPLAB_FINETUNE,
                                  {'model.backbone.arch': str(tmp_path / 'best_arch.json')}), 'mmseg')
    randomize_batch_norms(segmentor, 3)
    torch.nn.init.normal_(segmentor.decode_head.conv_seg.weight, std=0.5)
    torch.save(dict(state_dict=segmentor.state_dict()), tmp_path / 'iter_200.pth')

    out = tmp_path / 'out'
    manifest, lines = run_export(tmp_path, AUTO_DEEPLAB_FINETUNE, out, exporter='torchscript',
                                 checkpoint=str(tmp_path / 'iter_200.pth'))
    assert_both_parity_checks_printed(lines, manifest)
    assert manifest['input']['shape'] == [1, 3, 64, 128]  # the toy test images
    text = assert_no_search_in(out, tmp_path, 'AutoDeepLabSegmentor')
    cfg = Config.fromfile(str(out / 'config.py'))
    assert cfg.model.type == 'EncoderDecoder' and cfg.model.backbone.type == 'AutoDeepLabBackbone'
    # The head's wiring, written out: stride 16 of F = 8, B = 5.
    head = cfg.model.decode_head
    assert (head.in_channels, head.c1_in_channels, tuple(head.dilations)) == (160, 40, (1, 6, 12, 18))
    assert 'iter_200' not in text
    model = plain_model(out, 'mmseg')
    assert torch.equal(model.state_dict()['decode_head.conv_seg.weight'],
                       segmentor.state_dict()['decode_head.conv_seg.weight'])
    assert_onnxruntime_matches(out, model, manifest)


# -- FNA: the adapted timm network --------------------------------------------------------
def test_fna_export_keeps_the_adapted_weights(tmp_path):
    from backbones.fna.adapted import FNA_SPACE, build_adapted, resolve_fna_arch
    arch = resolve_fna_arch('fna_retinanet_mobilenetv2')
    FNA_SPACE.save_arch(tmp_path / 'best_arch.json', arch, {'bbox_mAP': 0.1})
    adapted = build_adapted(arch, num_classes=0)
    randomize_batch_norms(adapted, 4)
    torch.save(adapted.state_dict(), tmp_path / 'adapted_weights.pth')

    out = tmp_path / 'out'
    manifest, lines = run_export(tmp_path, FNA_FINETUNE, out, exporter='torchscript')
    assert_both_parity_checks_printed(lines, manifest)
    assert 'adapted_weights.pth' in manifest['weights']
    assert_no_search_in(out, tmp_path, 'adapted_weights', 'FNASuperNet')
    cfg = Config.fromfile(str(out / 'config.py'))
    assert cfg.model.backbone.type == 'FNABackbone' and cfg.model.backbone.weights is None
    assert cfg.model.backbone.arch.arch == arch
    model = plain_model(out, 'mmdet')
    key = 'blocks.3.1.bn2.running_var'
    assert torch.equal(model.backbone.model.state_dict()[key], adapted.state_dict()[key])
    assert_onnxruntime_matches(out, model, manifest)


# -- AutoGAN: the generator on its own ----------------------------------------------------------
def test_autogan_generator_export_computes_the_shared_path(tmp_path):
    from gan.autogan.shared_generator import AutoGANSharedGenerator
    from gan.autogan.space import AutoGANSpace
    from nas_tasks.builder import load_config
    settings = dict(gf_dim=16, latent_dim=128, bottom_width=4)  # the toy search's
    assert load_config(AUTOGAN_SEARCH).estimator.gan.gf_dim == settings['gf_dim']
    torch.manual_seed(0)
    shared = AutoGANSharedGenerator(**settings)
    randomize_batch_norms(shared, 5)
    space = AutoGANSpace()
    arch = space.sample(random.Random(2))
    space.save_arch(tmp_path / 'best_arch.json', arch, {'IS': 1.7})
    # What the search's last checkpoint holds of the shared generator, and its export.
    torch.save({'estimator': {'trainer': {'generator': shared.state_dict()}}},
               tmp_path / 'search_state.pth')
    torch.save(shared.subnet_state_dict(arch), tmp_path / 'best_generator.pth')

    out = tmp_path / 'out'
    manifest, lines = run_export(tmp_path, AUTOGAN_SEARCH, out, exporter='torchscript')
    assert_both_parity_checks_printed(lines, manifest)
    assert manifest['input']['name'] == 'z' and manifest['input']['shape'] == [1, 128]
    assert manifest['outputs'] == {'output': [1, 3, 32, 32]}
    assert_no_search_in(out, tmp_path, 'AutoGANSharedGenerator', 'search_state')
    cfg = Config.fromfile(str(out / 'config.py'))
    assert cfg.model.type == 'AutoGANGenerator' and cfg.model.arch.arch == arch
    assert 'train_dataloader' not in cfg and 'estimator' not in cfg
    model = plain_model(out, 'mmengine')
    assert_onnxruntime_matches(out, model, manifest, forward=lambda net, z: net(z))


# -- refusals before anything is built ---------------------------------------------------
def test_an_arch_with_another_tasks_config_is_one_line(tmp_path):
    from detection.nas_fpn.space import NASFPNSpace
    space = NASFPNSpace()
    space.save_arch(tmp_path / 'best_arch.json', space.sample(random.Random(1)), {})
    with pytest.raises(NasError, match=r"space 'nas-fpn'.*model.neck is 'FPN'.*SearchableNASFPN"):
        run_export(tmp_path, FNA_FINETUNE, tmp_path / 'out')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(NasError, match='holds no best_arch.json'):
        run_export(tmp_path / 'empty', FNA_FINETUNE, tmp_path / 'out')
    assert not (tmp_path / 'out').exists()


def test_a_plain_config_pointing_at_search_files_is_refused(tmp_path):
    from detection.export import DetNASExport
    from detection.detnas.space import DetNASSpace
    from nas_tasks.export import read_found_model
    from nas_tasks.export.plain_config import check_no_search_code
    space = DetNASSpace('small')
    space.save_arch(tmp_path / 'best_arch.json', space.sample(random.Random(0)), {})
    found = read_found_model(tmp_path)
    leaking = Config(dict(model=dict(backbone=dict(type='DetNASBackbone', init_cfg=dict(
        type='Pretrained', checkpoint=str(tmp_path / 'best_subnet.pth'))))))
    with pytest.raises(NasError, match=r"model.backbone.init_cfg.checkpoint points at the search's"):
        check_no_search_code(leaking, leaking.pretty_text, DetNASExport, found)
    supernet = Config(dict(model=dict(backbone=dict(type='DetNASSuperNet'))))
    with pytest.raises(NasError, match='names the search module DetNASSuperNet'):
        check_no_search_code(supernet, supernet.pretty_text, DetNASExport, found)
    plain = Config(dict(model=dict(backbone=dict(type='DetNASBackbone')), data_root='data/toy_coco/'))
    check_no_search_code(plain, plain.pretty_text, DetNASExport, found)
