"""End to end: FNA's toy adaptations through tools/search.py (detection and
segmentation, the session's shared runs), kill + resume, and fine-tuning of the
adapted network in mmdet and mmseg, starting from the remapped seed."""
import json
import sys

import pytest
import timm
import torch

from conftest import (ONE_THREAD, assert_one_line, kill_when, one_torch_thread, run_tool,
                      search_error)
from search_runs import DIFFERENTIABLE, FNA_DETECTION, FNA_SEGMENTATION, fna_options

from test_detnas_search_e2e import best_without_timings

# One xdist worker: the runs are requested by name (request.getfixturevalue) below.
pytestmark = pytest.mark.xdist_group('fna')
SEARCH = DIFFERENTIABLE
DETECTION, SEGMENTATION = FNA_DETECTION, FNA_SEGMENTATION


def search_command(config, work_dir, data_root, seed_path) -> list[str]:
    return [sys.executable, 'tools/search.py', config, '--work-dir', str(work_dir),
            '--cfg-options', *fna_options(config, data_root, seed_path)]


def checkpoint(work_dir, name='search_state.pth') -> dict:
    return torch.load(work_dir / name, map_location='cpu', weights_only=True)


@pytest.fixture
def seed_weights(fna_seed_weights):
    return fna_seed_weights


@pytest.fixture
def detection_run(fna_detection_search):
    return fna_detection_search.work_dir


@pytest.fixture
def segmentation_run(fna_segmentation_search):
    return fna_segmentation_search.work_dir


@pytest.mark.parametrize('run, score', [('detection_run', 'coco/bbox_mAP'),
                                        ('segmentation_run', 'mIoU')])
def test_toy_adaptation_writes_an_arch_timm_builds_and_weights_it_loads(run, score, request):
    work_dir = request.getfixturevalue(run)
    document = json.loads((work_dir / 'best_arch.json').read_text())
    assert document['space'] == 'fna' and document['arch']['seed'] == 'mobilenetv2_100'
    assert score in document['metrics'] and document['metrics']['flops'] > 0
    assert document['metrics']['flops_convention'] == 'macs_conv_matmul'  # the paper's MAdds

    # The architecture weights moved once architecture steps began, and the
    # arch is the argmax of the trained logits.
    history = checkpoint(work_dir)['history']
    first, last = history[0]['arch_weights'], history[-1]['arch_weights']
    assert history[0]['arch_loss'] is None and history[-1]['arch_loss'] is not None
    assert history[-1]['arch_cost'] is not None
    assert not torch.allclose(torch.tensor(first['first']), torch.tensor(last['first']))

    # timm builds it by name; the remapped weights load with no key missing.
    model = timm.create_model('fna_adapted', arch=str(work_dir / 'best_arch.json'), num_classes=0)
    weights = torch.load(work_dir / 'adapted_weights.pth', weights_only=True)
    model.load_state_dict(weights, strict=True)
    report = json.loads((work_dir / 'remap_report.json').read_text())
    assert report['counts']['remapped'] == len(weights) and not report['kept_init']
    for name in ('plots/arch_first.png', 'plots/arch_rest.png', 'cost_table.json', 'search.log'):
        assert (work_dir / name).stat().st_size > 0, name


def test_detection_search_trains_its_weights_on_unflipped_images(toy_coco):
    """As the official search (JaminFong/FNA tools/divide_dataset.py: the weight split
    is built from the val config, flip_ratio 0): FNA's detection search runs its weight
    half through the val pipeline; the architecture half keeps the random flip."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from detection.fna import FNADetectionSearch
    from nas_tasks.builder import apply_data_root
    from test_differentiable_task import image_ids, mirrored_draws

    cfg = Config.fromfile(DETECTION)
    apply_data_root(cfg, f'{toy_coco}/')
    search = FNADetectionSearch(cfg, **{key: value for key, value in
                                        cfg.differentiable_search.items() if key != 'type'})
    assert search.weight_pipeline == 'val'
    with DefaultScope.overwrite_default_scope(search.default_scope):
        weight, arch = search.halves(search.build_dataset('train'))
        assert len(weight) == len(arch) == 8
        assert set(image_ids(weight)).isdisjoint(image_ids(arch))
        assert not any(mirrored_draws(weight))
        assert any(mirrored_draws(arch))


@pytest.mark.slow
def test_killed_adaptation_resumes_to_the_same_result(segmentation_run, toy_cityscapes,
                                                      seed_weights, tmp_path):
    work_dir = tmp_path / 'killed'
    command = search_command(SEGMENTATION, work_dir, toy_cityscapes, seed_weights)
    state_file = work_dir / 'search_state.pth'
    kill_when(command, state_file.exists, env_extra=ONE_THREAD, timeout=300)
    assert not (work_dir / 'best_arch.json').exists()
    assert checkpoint(work_dir)['epoch'] < 3, 'killed after the last epoch: nothing to resume'

    run_tool([*command, '--resume'], env_extra=ONE_THREAD, check=True)
    resumed, straight = checkpoint(work_dir)['model'], checkpoint(segmentation_run)['model']
    logits = straight['task_model.backbone.arch_params.logits.first']
    assert logits.abs().max() > 1e-2, 'alpha never trained: the comparison would prove nothing'
    assert resumed.keys() == straight.keys()
    assert all(torch.equal(resumed[key], straight[key]) for key in straight)
    assert best_without_timings(work_dir) == best_without_timings(segmentation_run)


@pytest.mark.parametrize('package, config, run, data, prefix', [
    ('mmdet', 'configs/fna/retinanet_fna_finetune_toy.py', 'detection_run', 'toy_coco',
     'backbone.model.'),
    ('mmseg', 'configs/fna/deeplabv3_fna_finetune_toy.py', 'segmentation_run', 'toy_cityscapes',
     'backbone.model.')])
def test_fine_tuning_starts_from_the_remapped_seed(
        package, config, run, data, prefix, request, tmp_path):
    search_dir, data_root = request.getfixturevalue(run), request.getfixturevalue(data)
    options = [f'model.backbone.arch={search_dir}/best_arch.json',
               f'model.backbone.weights={search_dir}/adapted_weights.pth',
               'train_cfg.max_iters=1', 'train_cfg.val_interval=100',
               'default_hooks.checkpoint.interval=1',
               # lr 0: the one step leaves the weights where initialisation put them.
               'optim_wrapper.optimizer.lr=0.0', 'optim_wrapper.optimizer.weight_decay=0.0',
               'param_scheduler=[]']
    if package == 'mmdet':
        options += [f'{split}_dataloader.dataset.data_root={data_root}/'
                    for split in ('train', 'val', 'test')]
        options += [f'{split}_evaluator.ann_file={data_root}/annotations/instances_val.json'
                    for split in ('val', 'test')]
    else:
        options += [f'{split}_dataloader.dataset.data_root={data_root}/'
                    for split in ('train', 'val', 'test')]
    # mmdet's and mmseg's own train tools run these configs in test_finetune.py and
    # test_auto_deeplab_finetune.py; here the Runner they build trains in this process.
    from nas_tasks.cli import parse_cfg_options
    from nas_tasks.runner import build_runner
    with one_torch_thread():
        build_runner(config, str(tmp_path), 'none', parse_cfg_options(options)).train()
    trained = torch.load(tmp_path / 'iter_1.pth', map_location='cpu', weights_only=False)
    backbone = {key[len(prefix):]: value for key, value in trained['state_dict'].items()
                if key.startswith(prefix)}
    remapped = torch.load(search_dir / 'adapted_weights.pth', weights_only=True)
    fresh = timm.create_model('fna_adapted', arch=str(search_dir / 'best_arch.json'),
                              num_classes=0).state_dict()
    compared = [key for key in backbone if key.endswith('running_var') or key.endswith('.weight')]
    assert compared and all(key in remapped for key in backbone)
    differs_from_init = [key for key in compared if not torch.equal(remapped[key], fresh[key])]
    assert differs_from_init, 'the remapped weights equal timm init: the test would prove nothing'
    for key in compared:
        if key.endswith('running_var'):
            continue  # the one training step updates BatchNorm statistics
        assert torch.equal(backbone[key], remapped[key]), key


@pytest.mark.slow  # a second FNA search, beside the session's
def test_latency_table_from_the_target_device_and_supernet_weights(toy_cityscapes, seed_weights,
                                                                   tmp_path):
    """A latency table measured by tools/fna_cost_table.py drives the search (and is
    kept with it); adapted_init='supernet' exports the super network's trained ops."""
    options = fna_options(SEGMENTATION, toy_cityscapes, seed_weights)
    table_file = tmp_path / 'latency.json'
    run_tool(['python', 'tools/fna_cost_table.py', SEGMENTATION, '--out', str(table_file),
              '--cfg-options', *options], env_extra=ONE_THREAD, check=True)
    measured = json.loads(table_file.read_text())
    assert measured['provenance']['unit'] == 'ms' and measured['provenance']['threads'] == 1
    work_dir = tmp_path / 'latency'
    run_tool([*search_command(SEGMENTATION, work_dir, toy_cityscapes, seed_weights),
              f'{SEARCH}.cost.metric=latency', f'{SEARCH}.cost.table={table_file}',
              f'{SEARCH}.adapted_init=supernet'], env_extra=ONE_THREAD, check=True)
    assert json.loads((work_dir / 'cost_table.json').read_text()) == measured
    report = json.loads((work_dir / 'remap_report.json').read_text())
    assert report['from_supernet'] and 'remapped' in report['from_seed']
    model = timm.create_model('fna_adapted', arch=str(work_dir / 'best_arch.json'), num_classes=0)
    model.load_state_dict(torch.load(work_dir / 'adapted_weights.pth', weights_only=True))

    # A table of another super network is refused with one line.
    message = search_error(tmp_path / 'other', *options, 'model.backbone.depths=[3,2,2,1,1,1]',
                           f'{SEARCH}.cost.metric=latency', f'{SEARCH}.cost.table={table_file}',
                           config=SEGMENTATION)
    assert_one_line(message, 'measured for another super network', 'measure it again')
