"""Launching: ``--launcher slurm`` turns srun's variables into torchrun's as mmengine's
``init_dist('slurm')`` does, every tool takes ``--launcher none|pytorch|slurm``, and
tools/dist_search.sh and tools/slurm_search.sh build mmdet's command lines.

The two scripts run here with stand-ins for the programs they start (``python`` and
``srun``, which print the arguments they get): what they run is checked by the real
runs of tests/test_multi_node.py (slow tier), which also run ``--launcher slurm``.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from conftest import REPO, assert_one_line
from nas_tasks.errors import NasError
from nas_tasks.launchers import DEFAULT_MASTER_PORT, LAUNCHERS, prepare_environment, slurm_environment

SRUN_TASK = dict(SLURM_PROCID='5', SLURM_NTASKS='16', SLURM_NODELIST='gpu[07-08]',
                 SLURM_LOCALID='1')
# Prints its arguments as one JSON line: a stand-in for a program a script starts.
ECHO_ARGS = f'#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n'


def executable(path, text: str):
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def scontrol(tmp_path, monkeypatch):
    """An ``scontrol`` on the PATH that expands ``show hostname gpu[07-08]`` as Slurm's
    does (one host a line), and records its arguments."""
    calls = tmp_path / 'scontrol_calls'
    executable(tmp_path / 'scontrol', f'#!/bin/sh\necho "$@" >> {calls}\n'
               'if [ "$3" = "gpu[07-08]" ]; then printf "gpu07\\ngpu08\\n"; else exit 1; fi\n')
    monkeypatch.setenv('PATH', f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    return calls


def test_slurm_task_gets_torchrun_variables(scontrol):
    assert slurm_environment(SRUN_TASK) == dict(
        RANK='5', WORLD_SIZE='16', LOCAL_RANK='1', MASTER_ADDR='gpu07',
        MASTER_PORT=DEFAULT_MASTER_PORT)
    assert scontrol.read_text().split() == ['show', 'hostname', 'gpu[07-08]']


def test_slurm_keeps_a_given_master_address_and_port(scontrol):
    environment = slurm_environment(dict(SRUN_TASK, MASTER_ADDR='10.1.2.3', MASTER_PORT='29611'))
    assert (environment['MASTER_ADDR'], environment['MASTER_PORT']) == ('10.1.2.3', '29611')
    assert not scontrol.exists(), 'scontrol was asked for a host that was given'


def test_slurm_local_rank_without_slurm_localid_is_0_on_cpu():
    task = {k: v for k, v in SRUN_TASK.items() if k != 'SLURM_LOCALID'}
    assert slurm_environment(dict(task, MASTER_ADDR='h'))['LOCAL_RANK'] == '0'


def test_prepare_environment_sets_the_variables_for_the_process_group(scontrol, monkeypatch):
    for name, value in SRUN_TASK.items():
        monkeypatch.setenv(name, value)
    for name in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(name, raising=False)
    prepare_environment('slurm')
    assert [os.environ[name] for name in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR')] == \
        ['5', '16', '1', 'gpu07']


@pytest.mark.parametrize('task, expected', [
    ({}, ['SLURM_PROCID, SLURM_NTASKS, SLURM_NODELIST are not set', 'srun']),
    ({k: v for k, v in SRUN_TASK.items() if k != 'SLURM_NTASKS'}, ['SLURM_NTASKS is not set']),
    (dict(SRUN_TASK, SLURM_PROCID='x'), ["SLURM_PROCID must be an integer, got 'x'"]),
    (dict(SRUN_TASK, SLURM_NODELIST='other[1-2]'),
     ['scontrol show hostname other[1-2] gave no host', 'set MASTER_ADDR']),
])
def test_bad_slurm_environment_is_one_line(scontrol, task, expected):
    with pytest.raises(NasError) as error:
        slurm_environment(task)
    assert_one_line(str(error.value), *expected)


def test_slurm_without_scontrol_or_master_address_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv('PATH', str(tmp_path))  # no scontrol on it
    with pytest.raises(NasError) as error:
        slurm_environment(SRUN_TASK)
    assert_one_line(str(error.value), 'scontrol is not on the PATH', "SLURM_NODELIST='gpu[07-08]'",
                    'set MASTER_ADDR')


@pytest.mark.parametrize('tool', ['search', 'train', 'test', 'diagnose'])
def test_every_tool_takes_each_launcher(tool):
    result = subprocess.run([sys.executable, f'tools/{tool}.py', '--help'], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"--launcher {{{','.join(LAUNCHERS)}}}" in result.stdout
    assert LAUNCHERS == ('none', 'pytorch', 'slurm')


def script_command(tmp_path, script: str, args: list[str], env_extra: dict) -> list[str]:
    """The command line ``tools/<script>`` starts, printed by the stand-in it starts."""
    result = subprocess.run(['bash', f'tools/{script}', *args], cwd=REPO, capture_output=True,
                            text=True, timeout=60, env=dict(os.environ, **env_extra))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_dist_search_starts_torchrun_on_the_node_mmdet_style(tmp_path):
    python = executable(tmp_path / 'python', ECHO_ARGS)
    command = script_command(
        tmp_path, 'dist_search.sh', ['configs/x.py', '4', '--work-dir', 'w d', '--resume'],
        dict(PYTHON=str(python), NNODES='2', NODE_RANK='1', MASTER_ADDR='node0', PORT='29612',
             MAX_RESTARTS='3'))
    assert command == [
        '-m', 'torch.distributed.run', '--nnodes=2', '--node-rank=1', '--master-addr=node0',
        '--master-port=29612', '--nproc-per-node=4', '--max-restarts=3',
        'tools/search.py',
        'configs/x.py', '--launcher', 'pytorch', '--work-dir', 'w d', '--resume']


def test_slurm_search_starts_one_srun_task_per_gpu_that_ends_all_on_a_failure(tmp_path):
    executable(tmp_path / 'srun', ECHO_ARGS)
    command = script_command(
        tmp_path, 'slurm_search.sh', ['gpu', 'nas', 'configs/x.py', '/shared/w', '--resume'],
        dict(PATH=f"{tmp_path}{os.pathsep}{os.environ['PATH']}", GPUS='16', PYTHON='python3'))
    assert command[:7] == ['-p', 'gpu', '--job-name=nas', '--gres=gpu:8', '--ntasks=16',
                           '--ntasks-per-node=8', '--cpus-per-task=5']
    assert '--kill-on-bad-exit=1' in command
    program = command[command.index('--kill-on-bad-exit=1') + 1:]
    assert program[0] == 'python3' and program[1] == '-u' and program[2].endswith('tools/search.py')
    assert program[3:] == ['configs/x.py', '--work-dir=/shared/w', '--launcher', 'slurm', '--resume']
