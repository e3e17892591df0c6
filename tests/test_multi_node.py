"""Searches across nodes, stood in for by two torchrun agents on 127.0.0.1 (``--nnodes 2
--nproc-per-node 1``, c10d rendezvous), each started by the test as a node's own agent:
they give the same search as one process, and a work directory that is not one
directory for both "nodes" stops both with one line.

All slow: each test starts several processes (torchrun agents and their workers).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from conftest import (ONE_THREAD, REPO, TOY_CONFIG, assert_scores_vary, free_port, read_candidates,
                      run_tool)
from search_runs import detnas_options
from stand_in_estimators import RAISES, key
from test_detnas_search_e2e import best_without_timings, copy_supernet
from test_search_failures import flaky_search_config

STAND_IN_ENV = {'PYTHONPATH': str(REPO / 'tests'), **ONE_THREAD}


def run_nodes(commands: list[list[str]], envs: list[dict], timeout: int = 600):
    """Start ``commands[i]`` with ``envs[i]`` added to the environment, all at once (as
    nodes, or srun's tasks, would start); wait for all. Each one's (exit status, stderr)."""
    processes = [subprocess.Popen(command, cwd=REPO, env=dict(os.environ, **env), text=True,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for command, env in zip(commands, envs)]
    try:
        stderrs = [process.communicate(timeout=timeout)[1] for process in processes]
        return [(process.returncode, stderr) for process, stderr in zip(processes, stderrs)]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()


def run_two_agents(search_args: list[list[str]], env_extra: dict):
    """One torchrun agent per node (``search_args[node]``: its tools/search.py arguments),
    both on one c10d rendezvous at 127.0.0.1."""
    endpoint, run_id = f'127.0.0.1:{free_port()}', uuid.uuid4().hex[:8]
    return run_nodes([[sys.executable, '-m', 'torch.distributed.run', '--nnodes', '2',
                       '--nproc-per-node', '1', '--rdzv-backend', 'c10d', '--rdzv-endpoint', endpoint,
                       '--rdzv-id', run_id, 'tools/search.py', *args, '--launcher', 'pytorch']
                      for args in search_args], [env_extra] * len(search_args))


def assert_agents_succeeded(outcomes) -> None:
    for node, (code, stderr) in enumerate(outcomes):
        assert code == 0, f'agent {node} exited {code}:\n{stderr[-3000:]}'


def records(work_dir) -> list[tuple]:
    return [(c['arch'], c['score'], c['status']) for c in read_candidates(work_dir)]


def best_arch(work_dir) -> dict:
    return json.loads((work_dir / 'best_arch.json').read_text())


def assert_searched_like_one_process(config, work_dir, one_process_dir) -> None:
    """The stand-in search in ``work_dir`` has the candidates, scores (and a failure,
    gathered across the ranks) and best architecture of one process's."""
    run_tool(['python', 'tools/search.py', str(config), '--work-dir', str(one_process_dir)],
             env_extra=STAND_IN_ENV, check=True)
    assert_scores_vary(read_candidates(work_dir))
    assert len(read_candidates(work_dir)) > 8, 'fewer candidates than one generation and more'
    assert records(work_dir) == records(one_process_dir)
    assert any(c['status'] == 'failed' and key(c['arch']) == key(RAISES)
               for c in read_candidates(work_dir))
    assert best_arch(work_dir) == best_arch(one_process_dir)
    assert not list(work_dir.glob('.shared_work_dir_check_*')), 'the shared-directory token was left'


@pytest.mark.slow
def test_two_agents_search_like_one_process(tmp_path):
    """The stand-in search, each agent a node of one process."""
    config = flaky_search_config(tmp_path / 'flaky_search.py')
    two, one = tmp_path / 'two_nodes', tmp_path / 'one_process'
    outcomes = run_two_agents([[str(config), '--work-dir', str(two)]] * 2, STAND_IN_ENV)
    assert_agents_succeeded(outcomes)
    assert_searched_like_one_process(config, two, one)


@pytest.mark.slow
def test_dist_search_script_on_two_nodes_searches_like_one_process(tmp_path):
    """tools/dist_search.sh run once per node, mmdet-style (NNODES, NODE_RANK,
    MASTER_ADDR, PORT: torchrun's static rendezvous)."""
    config = flaky_search_config(tmp_path / 'flaky_search.py')
    work_dir = tmp_path / 'two_nodes'
    node = dict(STAND_IN_ENV, PYTHON=sys.executable, NNODES='2', MASTER_ADDR='127.0.0.1',
                PORT=free_port())
    outcomes = run_nodes([['bash', 'tools/dist_search.sh', str(config), '1', '--work-dir',
                           str(work_dir)]] * 2,
                         [dict(node, NODE_RANK='0'), dict(node, NODE_RANK='1')])
    assert_agents_succeeded(outcomes)
    assert_searched_like_one_process(config, work_dir, tmp_path / 'one_process')


@pytest.mark.slow
def test_slurm_launcher_searches_like_one_process(tmp_path):
    """Two processes started as srun starts its tasks (SLURM_PROCID, SLURM_NTASKS,
    SLURM_NODELIST, SLURM_LOCALID; MASTER_ADDR given, as there is no scontrol here)
    with --launcher slurm: the CPU/gloo group forms, and the search equals one process's."""
    config = flaky_search_config(tmp_path / 'flaky_search.py')
    work_dir = tmp_path / 'slurm'
    job = dict(STAND_IN_ENV, SLURM_NTASKS='2', SLURM_NODELIST='localhost', MASTER_ADDR='127.0.0.1',
               MASTER_PORT=free_port())
    outcomes = run_nodes([[sys.executable, 'tools/search.py', str(config), '--work-dir',
                           str(work_dir), '--launcher', 'slurm']] * 2,
                         [dict(job, SLURM_PROCID=str(task), SLURM_LOCALID=str(task))
                          for task in range(2)])
    assert_agents_succeeded(outcomes)
    assert_searched_like_one_process(config, work_dir, tmp_path / 'one_process')


@pytest.mark.slow
def test_a_work_dir_that_is_not_shared_stops_every_node_in_one_line(tmp_path):
    """Each agent gets its own --work-dir, as nodes whose "shared" path is a local disk:
    both ranks stop with the one line, and the search wrote nothing."""
    config = flaky_search_config(tmp_path / 'flaky_search.py')
    node_dirs = [tmp_path / 'node0_disk', tmp_path / 'node1_disk']
    outcomes = run_two_agents([[str(config), '--work-dir', str(d)] for d in node_dirs],
                              {**STAND_IN_ENV, 'NAS_TASKS_SHARED_DIR_WAIT': '2'})
    for node, (code, stderr) in enumerate(outcomes):
        assert code != 0, f'agent {node} succeeded on an unshared work directory'
        errors = [line for line in stderr.splitlines() if line.startswith('error: ')]
        assert len(errors) == 1, stderr[-3000:]
        assert f'the work directory {node_dirs[node]} must be on a file system every node shares' \
            in errors[0], errors[0]
        assert 'rank 1 on ' in errors[0] and 'rank 0 on ' in errors[0], errors[0]
    # Rank 0 removed its token; the search wrote nothing; rank 1 created nothing.
    assert list(node_dirs[0].iterdir()) == []
    assert not node_dirs[1].exists()


@pytest.mark.slow
def test_detnas_toy_search_on_two_agents_scores_like_one_process(detnas_search, toy_coco, tmp_path):
    """The real task on the same path. The supernet trains data-parallel over the two
    nodes (DDP, a total batch of twice the per-rank batch), so its weights differ from
    a 1-process supernet's; what must hold across nodes is the split evaluation. So the
    2-node run starts from the session's trained supernet (``load_from``) and trains 20
    more iterations under DDP, so its candidates rank; the 1-process run then scores
    the supernet the 2-node run trained (copied into its work dir, so it skips
    training). Equal candidates, scores and best architecture show that the 2-node
    evolution, BN recalibration, evaluation and gathering equal one process's."""
    options = [*detnas_options(toy_coco, supernet_iters=20),
               f'load_from={detnas_search.work_dir}/supernet/supernet_final.pth']
    two, one = tmp_path / 'two_nodes', tmp_path / 'one_process'
    outcomes = run_two_agents(
        [[TOY_CONFIG, '--work-dir', str(two), '--cfg-options', *options]] * 2, ONE_THREAD)
    assert_agents_succeeded(outcomes)
    copy_supernet(two, one)
    run_tool(['python', 'tools/search.py', TOY_CONFIG, '--work-dir', str(one),
              '--cfg-options', *options], env_extra=ONE_THREAD, check=True)

    two_candidates = read_candidates(two)
    assert_scores_vary(two_candidates)
    assert [(c['arch'], c['score']) for c in two_candidates] == \
        [(c['arch'], c['score']) for c in read_candidates(one)]
    assert best_without_timings(two) == best_without_timings(one)


@pytest.mark.slow
def test_a_work_dir_rank_0_cannot_write_stops_every_node_in_one_line(tmp_path):
    """Rank 0 fails to write the token (the work dir's parent is a file): rank 1 learns
    it at once and stops with the same line, instead of waiting for rank 0 at a barrier."""
    config = flaky_search_config(tmp_path / 'flaky_search.py')
    blocker = tmp_path / 'a_file'
    blocker.write_text('')
    outcomes = run_two_agents([[str(config), '--work-dir', str(blocker / 'work')]] * 2,
                              STAND_IN_ENV)
    for node, (code, stderr) in enumerate(outcomes):
        assert code != 0, f'agent {node} succeeded'
        errors = [line for line in stderr.splitlines() if line.startswith('error: ')]
        assert len(errors) == 1, stderr[-3000:]
        assert errors[0].startswith(f'error: cannot write in the work directory {blocker / "work"}: ')
        assert 'Not a directory' in errors[0], errors[0]
