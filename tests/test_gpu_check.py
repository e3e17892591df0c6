"""tools/gpu_check.py: without CUDA it stops at once with one line, importing nothing
heavy; with CUDA it runs every check (not here: no GPU on these machines), so the
checks it would run and the one-line error it reports are checked here."""
import importlib.util
import subprocess
import sys

import pytest

from conftest import REPO, assert_one_line_error
from test_light_imports import loaded_modules

# What the no-CUDA path must not import: the task stack, and the tasks themselves.
TASK_STACK = ('mmdet', 'mmseg', 'mmengine', 'mmcv', 'timm', 'backbones', 'detection',
              'segmentation', 'gan')


@pytest.fixture
def no_cuda(monkeypatch):
    """Hide any GPU from the tool's process, so the test means the same on a GPU machine."""
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '')


@pytest.fixture(scope='module')
def gpu_check():
    spec = importlib.util.spec_from_file_location('tool_gpu_check', REPO / 'tools' / 'gpu_check.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_cuda_one_line_and_nothing_written(no_cuda, tmp_path):
    out = tmp_path / 'gpu_check.json'
    result = subprocess.run([sys.executable, 'tools/gpu_check.py', '--out', str(out)], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert_one_line_error(result, 'has no usable CUDA GPU', 'run it on a GPU machine')
    assert not out.exists() and not result.stdout.strip()


def test_without_cuda_nothing_heavy_is_imported(no_cuda):
    _, found = loaded_modules('tools/gpu_check.py')
    assert found['code'] == 2
    assert 'torch' in found['modules']  # the probe saw the CUDA query
    assert not set(TASK_STACK) & set(found['modules']), sorted(set(TASK_STACK) & set(found['modules']))


@pytest.mark.parametrize('gpus', [1, 2])
def test_the_checks_cover_every_search_path_and_two_ranks_only_on_two_gpus(gpu_check, tmp_path, gpus):
    checks = gpu_check.checks(tmp_path, gpus)
    names = [check.name for check in checks]
    assert names[0] == 'toy data'  # the others read what it writes
    searched = [command[command.index('tools/search.py') + 1]
                for check in checks for command in check.commands if 'tools/search.py' in command]
    assert set(searched) == {
        'configs/detnas/detnas_retinanet_toy.py', 'configs/nas_fpn/nas_fpn_retinanet_toy.py',
        'configs/auto_deeplab/auto_deeplab_toy.py', 'configs/fna/fna_retinanet_toy.py',
        'configs/fna/fna_deeplabv3_toy.py', 'configs/autogan/autogan_cifar10_toy.py'}
    assert all((REPO / config).is_file() for config in searched)
    differentiable = [check for check in checks if 'epoch' in check.name]
    assert len(differentiable) == 3
    for check in differentiable:  # float16 AMP and SyncBN under a one-rank nccl group
        command = check.commands[0]
        assert command[command.index('--nproc-per-node') + 1] == '1'
        assert command[-2:] == ['--launcher', 'pytorch']
        assert {'differentiable_search.trainer.amp=True',
                'differentiable_search.trainer.sync_bn=True'} <= set(command)
    two_ranks = [check for check in checks if '2 ranks' in check.name]
    assert len(two_ranks) == (gpus >= 2)
    if two_ranks:
        command = two_ranks[0].commands[0]
        assert command[command.index('--nproc-per-node') + 1] == '2'
    assert any('latency' in name for name in names) and any('autogan' in name for name in names)


def test_a_failed_check_reports_its_one_line_error(gpu_check, tmp_path):
    failing = gpu_check.Check('fails', [
        [sys.executable, '-c', 'print("fine")'],
        [sys.executable, '-c', 'import sys; print("working"); '
                              'raise RuntimeError("CUDA error: an illegal memory access")'],
        [sys.executable, '-c', 'raise SystemExit("never run")']], 'a stand-in')
    outcome = gpu_check.run_check(failing, seconds_left=120)
    assert not outcome.ok
    assert outcome.error == 'exit status 1: RuntimeError: CUDA error: an illegal memory access'
    assert gpu_check.report_line(outcome).split()[1] == 'FAILED'
    tool_error = gpu_check.Check('tool', [[sys.executable, '-c',
                                           'import sys; print("error: a bad path", file=sys.stderr); '
                                           'sys.exit(2)']], 'a stand-in')
    assert gpu_check.run_check(tool_error, 120).error == 'exit status 2: a bad path'
    passing = gpu_check.run_check(gpu_check.Check('passes', [[sys.executable, '-c', '']], 'x'), 120)
    assert passing.ok and passing.error == '' and 'ok' in gpu_check.report_line(passing)
    late = gpu_check.run_check(failing, seconds_left=0)
    assert not late.ok and late.error.startswith('not run')
