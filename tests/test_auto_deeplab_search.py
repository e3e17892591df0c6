"""End to end: the Auto-DeepLab toy search through tools/search.py, kill + resume, refusals."""
import json
import shutil
import sys

import pytest
import torch

from conftest import ONE_THREAD, assert_one_line, kill_when, run_tool, search_error, snapshot
from search_runs import AUTO_DEEPLAB_CONFIG, auto_deeplab_options

from test_detnas_search_e2e import best_without_timings

CONFIG = AUTO_DEEPLAB_CONFIG


def search_command(work_dir, data_root, *extra) -> list[str]:
    return [sys.executable, 'tools/search.py', CONFIG, '--work-dir', str(work_dir),
            '--cfg-options', *auto_deeplab_options(data_root), *extra]


def final_model_state(work_dir) -> dict:
    return torch.load(work_dir / 'search_state.pth', map_location='cpu',
                      weights_only=True)['model']


@pytest.fixture
def straight_run(auto_deeplab_search):
    return auto_deeplab_search.work_dir, auto_deeplab_search.result


def test_toy_search_writes_the_decoded_arch_and_its_pictures(straight_run):
    from backbones.auto_deeplab.arch import validate_arch
    from backbones.auto_deeplab.decode import decode_genotype, viterbi_path
    from backbones.auto_deeplab.search_network import beta_mask, normalize_beta
    work_dir, result = straight_run
    document = json.loads((work_dir / 'best_arch.json').read_text())
    arch = document['arch']
    validate_arch(arch)
    assert arch['filter_multiplier'] == 20 and len(arch['path']) == 3 and len(arch['cell']) == 10

    # The arch is the decoding of the trained architecture parameters.
    state = final_model_state(work_dir)
    alpha = torch.softmax(state['net.arch_params.logits.alpha'], dim=-1)
    beta = normalize_beta(state['net.arch_params.logits.beta'], beta_mask(3))
    assert arch['cell'] == decode_genotype(alpha)
    assert arch['path'] == viterbi_path(beta)

    metrics = document['metrics']
    assert 0.0 <= metrics['mIoU'] <= 100.0
    assert metrics['flops'] > 0 and metrics['params'] > 0
    assert metrics['flops_convention'] == 'flops_mmengine'
    for name in ('path.png', 'cell.png', 'plots/arch_alpha.png', 'plots/arch_beta.png',
                 'search.log'):
        assert (work_dir / name).stat().st_size > 0, name
    assert 'best architecture:' in result.stdout and 'mIoU=' in result.stdout


@pytest.mark.slow
def test_killed_search_resumes_to_the_same_result(straight_run, toy_cityscapes, tmp_path):
    straight_dir, _ = straight_run
    work_dir = tmp_path / 'killed'
    command = search_command(work_dir, toy_cityscapes)
    checkpoint = work_dir / 'search_state.pth'
    kill_when(command, checkpoint.exists, env_extra=ONE_THREAD, timeout=300)
    assert not (work_dir / 'best_arch.json').exists()
    killed_after = torch.load(checkpoint, weights_only=True)['epoch']
    assert killed_after < 3, 'killed after the last epoch: nothing left to resume'

    run_tool([*command, '--resume'], env_extra=ONE_THREAD, check=True)
    assert best_without_timings(work_dir) == best_without_timings(straight_dir)
    resumed, straight = final_model_state(work_dir), final_model_state(straight_dir)
    assert resumed.keys() == straight.keys()
    assert all(torch.equal(resumed[key], straight[key]) for key in straight)


def test_finished_work_dir_is_not_overwritten(straight_run, toy_cityscapes):
    work_dir, _ = straight_run
    before = snapshot(work_dir)
    message = search_error(work_dir, *auto_deeplab_options(toy_cityscapes), config=CONFIG)
    assert_one_line(message, 'already holds a search', '--resume')
    assert snapshot(work_dir) == before


def test_resume_of_a_finished_search_exports_its_result_again(straight_run, toy_cityscapes,
                                                             tmp_path):
    """From the record in the checkpoint: nothing is trained or evaluated again (the
    timings in best_arch.json are the first run's), and the CLI prints it and exits 0."""
    straight_dir, _ = straight_run
    work_dir = tmp_path / 'finished'
    shutil.copytree(straight_dir, work_dir)
    for name in ('best_arch.json', 'path.png', 'cell.png'):
        (work_dir / name).unlink()
    checkpoints = {name: (work_dir / name).read_bytes()
                   for name in ('search_state.pth', 'search_state.prev.pth')}

    result = run_tool([*search_command(work_dir, toy_cityscapes), '--resume'],
                      env_extra=ONE_THREAD, check=True)
    original = (straight_dir / 'best_arch.json').read_text()
    assert (work_dir / 'best_arch.json').read_text() == original
    assert (work_dir / 'path.png').stat().st_size > 0 and (work_dir / 'cell.png').stat().st_size > 0
    assert all((work_dir / name).read_bytes() == content for name, content in checkpoints.items())
    miou = json.loads(original)['metrics']['mIoU']
    assert f'mIoU={miou:.4f}' in result.stdout
    assert 'exporting its result again' in (work_dir / 'search.log').read_text()


def test_resume_of_results_without_a_checkpoint_is_refused(straight_run, toy_cityscapes, tmp_path):
    straight_dir, _ = straight_run
    work_dir = tmp_path / 'results_only'
    work_dir.mkdir()
    shutil.copy(straight_dir / 'best_arch.json', work_dir)
    message = search_error(work_dir, *auto_deeplab_options(toy_cityscapes), config=CONFIG,
                           resume=True)
    assert_one_line(message, 'holds best_arch.json but no search_state.pth')
    assert sorted(p.name for p in work_dir.iterdir()) == ['best_arch.json']


@pytest.mark.parametrize('option, expected', [
    ('differentiable_search.trainer.epochz=2', ["trainer has no setting 'epochz'", 'epochs']),
    ('differentiable_search.network.num_layer=2', ["network has no setting 'num_layer'",
                                                   'num_layers']),
    ('differentiable_search.type=AutoDeepLabSearchh', ["unknown differentiable_search type",
                                                       'AutoDeepLabSearch']),
])
def test_unknown_search_setting(toy_cityscapes, tmp_path, option, expected):
    message = search_error(tmp_path / 'w', *auto_deeplab_options(toy_cityscapes), option,
                           config=CONFIG)
    assert_one_line(message, *expected)
    assert not (tmp_path / 'w').exists()
