"""End to end: FNA's toy adaptations through tools/search.py (detection and
segmentation), kill + resume, and fine-tuning of the adapted network with
mmdet's and mmseg's own tools, starting from the remapped seed."""
import json
import sys

import pytest
import timm
import torch

from conftest import (ONE_THREAD, free_port, kill_when, openmmlab_tool, randomize_batch_norms,
                      run_tool)
from test_bad_inputs import assert_one_line_error
from test_detnas_search_e2e import best_without_timings

SEARCH = 'differentiable_search'
DETECTION = 'configs/fna/fna_retinanet_toy.py'
SEGMENTATION = 'configs/fna/fna_deeplabv3_toy.py'


@pytest.fixture(scope='module')
def seed_weights(tmp_path_factory):
    """A MobileNetV2 seed whose BatchNorms are not at their init (so remapped values show)."""
    seed = timm.create_model('mobilenetv2_100', pretrained=False, num_classes=4)
    randomize_batch_norms(seed, seed=0)
    path = tmp_path_factory.mktemp('seed') / 'seed.pth'
    torch.save(seed.state_dict(), path)
    return path


def shrunk_options(config: str, data_root, seed_path) -> list[str]:
    """Two tiny stages per searchable stage (k3, e3/e6), 3 epochs of 2 iterations,
    architecture steps from epoch 1."""
    depths = '[2,2,1,1,1,1]' if config == DETECTION else '[2,2,2,1,1,1]'
    options = [f'data_root={data_root}/', f'model.backbone.seed.weights={seed_path}',
               f'model.backbone.depths={depths}', 'model.backbone.kernel_sizes=[3]',
               f'{SEARCH}.trainer.epochs=3', f'{SEARCH}.trainer.arch_start_epoch=1',
               f'{SEARCH}.trainer.max_iters_per_epoch=2', f'{SEARCH}.trainer.dataloader.batch_size=2',
               # A large architecture lr makes two steps move alpha visibly.
               f'{SEARCH}.trainer.arch_optimizer.lr=0.05']
    if config == DETECTION:
        options += [f'{split}_dataloader.dataset.data_root={data_root}/'
                    for split in ('train', 'val', 'test')]
        options += [f'val_evaluator.ann_file={data_root}/annotations/instances_heldout.json']
    return options


def search_command(config, work_dir, data_root, seed_path) -> list[str]:
    return [sys.executable, 'tools/search.py', config, '--work-dir', str(work_dir),
            '--cfg-options', *shrunk_options(config, data_root, seed_path)]


def checkpoint(work_dir, name='search_state.pth') -> dict:
    return torch.load(work_dir / name, map_location='cpu', weights_only=True)


@pytest.fixture(scope='module')
def detection_run(toy_coco, seed_weights, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('fna_det') / 'straight'
    run_tool(search_command(DETECTION, work_dir, toy_coco, seed_weights), env_extra=ONE_THREAD,
             check=True)
    return work_dir


@pytest.fixture(scope='module')
def segmentation_run(toy_cityscapes, seed_weights, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('fna_seg') / 'straight'
    run_tool(search_command(SEGMENTATION, work_dir, toy_cityscapes, seed_weights),
             env_extra=ONE_THREAD, check=True)
    return work_dir


@pytest.mark.parametrize('run, score', [('detection_run', 'coco/bbox_mAP'),
                                        ('segmentation_run', 'mIoU')])
def test_toy_adaptation_writes_an_arch_timm_builds_and_weights_it_loads(run, score, request):
    work_dir = request.getfixturevalue(run)
    document = json.loads((work_dir / 'best_arch.json').read_text())
    assert document['space'] == 'fna' and document['arch']['seed'] == 'mobilenetv2_100'
    assert score in document['metrics'] and document['metrics']['madds'] > 0

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
def test_fine_tuning_with_the_openmmlab_tools_starts_from_the_remapped_seed(
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
    run_tool(['python', openmmlab_tool(package, 'train'), config, '--work-dir', str(tmp_path),
              '--cfg-options', *options], env_extra=ONE_THREAD, check=True)
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


def test_detection_adaptation_under_torchrun_trains_as_ddp(toy_coco, seed_weights, tmp_path):
    """2 CPU processes (gloo): mmdet's samplers per half and rank, one sampled path on
    every rank in weight steps, all candidates in architecture steps; rank 0 writes."""
    work_dir = tmp_path / 'two_processes'
    command = search_command(DETECTION, work_dir, toy_coco, seed_weights)
    run_tool([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
              '--master_port', free_port(), *command[1:], '--launcher', 'pytorch'],
             env_extra=ONE_THREAD, check=True)
    state = checkpoint(work_dir)
    assert len(state['rng']) == 2, "the checkpoint should hold both ranks' generator states"
    # 8 images per half, batch 2 per rank: two iterations per epoch on each of 2 ranks.
    assert [record['step'] for record in state['history']] == [2, 4, 6]
    model = timm.create_model('fna_adapted', arch=str(work_dir / 'best_arch.json'), num_classes=0)
    model.load_state_dict(torch.load(work_dir / 'adapted_weights.pth', weights_only=True))


def test_latency_table_from_the_target_device_and_supernet_weights(toy_cityscapes, seed_weights,
                                                                   tmp_path):
    """A latency table measured by tools/fna_cost_table.py drives the search (and is
    kept with it); adapted_init='supernet' exports the super network's trained ops."""
    options = shrunk_options(SEGMENTATION, toy_cityscapes, seed_weights)
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
    other = run_tool([*search_command(SEGMENTATION, tmp_path / 'other', toy_cityscapes,
                                      seed_weights), 'model.backbone.depths=[3,2,2,1,1,1]',
                      f'{SEARCH}.cost.metric=latency', f'{SEARCH}.cost.table={table_file}'])
    assert_one_line_error(other, 'measured for another super network', 'measure it again')
