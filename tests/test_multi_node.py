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


def run_two_agents(search_args: list[list[str]], env_extra: dict, timeout: int = 600):
    """Start one torchrun agent per node (``search_args[node]``: its tools/search.py
    arguments after the script), both on one c10d rendezvous at 127.0.0.1; wait for both.

    Returns each agent's (exit status, stderr)."""
    endpoint, run_id = f'127.0.0.1:{free_port()}', uuid.uuid4().hex[:8]
    env = dict(os.environ, **env_extra)
    agents = [subprocess.Popen(
        [sys.executable, '-m', 'torch.distributed.run', '--nnodes', '2', '--nproc-per-node', '1',
         '--rdzv-backend', 'c10d', '--rdzv-endpoint', endpoint, '--rdzv-id', run_id,
         'tools/search.py', *args, '--launcher', 'pytorch'],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for args in search_args]
    try:
        stderrs = [agent.communicate(timeout=timeout)[1] for agent in agents]
        return [(agent.returncode, stderr) for agent, stderr in zip(agents, stderrs)]
    finally:
        for agent in agents:
            if agent.poll() is None:
                agent.kill()


def assert_agents_succeeded(outcomes) -> None:
    for node, (code, stderr) in enumerate(outcomes):
        assert code == 0, f'agent {node} exited {code}:\n{stderr[-3000:]}'


def records(work_dir) -> list[tuple]:
    return [(c['arch'], c['score'], c['status']) for c in read_candidates(work_dir)]


def best_arch(work_dir) -> dict:
    return json.loads((work_dir / 'best_arch.json').read_text())


@pytest.mark.slow
def test_two_agents_search_like_one_process(tmp_path):
    """The stand-in search: candidates, scores (and a failure, gathered across the
    nodes) and the best architecture equal one process's."""
    config = flaky_search_config(tmp_path / 'flaky_search.py')
    two, one = tmp_path / 'two_nodes', tmp_path / 'one_process'
    outcomes = run_two_agents([[str(config), '--work-dir', str(two)]] * 2, STAND_IN_ENV)
    assert_agents_succeeded(outcomes)
    run_tool(['python', 'tools/search.py', str(config), '--work-dir', str(one)],
             env_extra=STAND_IN_ENV, check=True)

    assert_scores_vary(read_candidates(two))
    assert len(read_candidates(two)) > 8, 'fewer candidates than one generation and more'
    assert records(two) == records(one)
    assert any(c['status'] == 'failed' and key(c['arch']) == key(RAISES) for c in read_candidates(two))
    assert best_arch(two) == best_arch(one)
    assert not list(two.glob('.shared_work_dir_check_*')), 'the shared-directory token was left'


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
