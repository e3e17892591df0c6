"""End to end: DetNAS toy search through tools/search.py, kill + resume, 2 processes."""
import json
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import free_port, REPO, TOY_CONFIG, run_tool, shrunk_search_options

# Same thread count in every process, so CPU float reductions match across runs.
ONE_THREAD = {'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}


def read_candidates(work_dir):
    return [json.loads(line) for line in (work_dir / 'candidates.jsonl').read_text().splitlines()]


def best_without_timings(work_dir):
    """best_arch.json without the wall-clock values, which differ from run to run."""
    document = json.loads((work_dir / 'best_arch.json').read_text())
    document['metrics'] = {k: v for k, v in document['metrics'].items() if 'seconds' not in k}
    return document


@pytest.fixture(scope='module')
def straight_run(toy_coco, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('detnas') / 'straight'
    result = run_tool(['python', 'tools/search.py', TOY_CONFIG, '--work-dir', str(work_dir),
                       '--cfg-options', *shrunk_search_options(toy_coco)],
                      env_extra=ONE_THREAD, check=True)
    return work_dir, result


def test_search_writes_best_arch_with_map_and_flops(straight_run):
    work_dir, result = straight_run
    document = json.loads((work_dir / 'best_arch.json').read_text())
    assert document['space'] == 'detnas-small' and len(document['arch']) == 20
    metrics = document['metrics']
    assert 0.0 <= metrics['bbox_mAP'] <= 1.0
    assert metrics['flops'] <= 300e6, 'the FLOPs constraint of the config was not respected'
    assert 'best architecture:' in result.stdout and 'flops=' in result.stdout
    candidates = read_candidates(work_dir)
    assert len(candidates) == 8
    assert len({json.dumps(c['arch'], sort_keys=True) for c in candidates}) == 8
    assert metrics['bbox_mAP'] == max(c['score'] for c in candidates)
    for name in ('best_subnet.pth', 'plots/score_per_round.png', 'plots/score_vs_flops.png',
                 'supernet/supernet_final.pth', 'search_state.pth'):
        assert (work_dir / name).is_file(), name
    timings = candidates[0]['metrics']
    assert timings['seconds_inference'] > 0 and timings['seconds_coco_eval'] > 0


def test_killed_search_resumes_to_the_same_result(straight_run, toy_coco, tmp_path):
    straight_dir, _ = straight_run
    work_dir = tmp_path / 'killed'
    command = [sys.executable, 'tools/search.py', TOY_CONFIG, '--work-dir', str(work_dir),
               '--cfg-options', *shrunk_search_options(toy_coco)]
    env = dict(__import__('os').environ, **ONE_THREAD)
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    candidates_file = work_dir / 'candidates.jsonl'
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if candidates_file.exists() and len(candidates_file.read_text().splitlines()) >= 4:
            break
        time.sleep(0.2)
    assert process.poll() is None, 'the search finished before it could be killed'
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (work_dir / 'best_arch.json').exists()

    run_tool(['python', *command[1:], '--resume'], env_extra=ONE_THREAD, check=True)
    assert best_without_timings(work_dir) == best_without_timings(straight_dir)
    assert [(c['arch'], c['score']) for c in read_candidates(work_dir)] == \
        [(c['arch'], c['score']) for c in read_candidates(straight_dir)]


def test_two_processes_score_candidates_like_one(toy_coco, tmp_path):
    """torchrun with 2 CPU processes (gloo): DDP supernet training, candidates split across ranks.

    The 1-process run reuses the supernet the 2-process run trained, so both
    score the same weights: equal scores show the split evaluation and the
    gathering are exact.
    """
    two = tmp_path / 'two_processes'
    run_tool([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
              '--master_port', free_port(), 'tools/search.py', TOY_CONFIG, '--launcher', 'pytorch',
              '--work-dir', str(two), '--cfg-options', *shrunk_search_options(toy_coco)],
             env_extra=ONE_THREAD, check=True)
    one = tmp_path / 'one_process'
    (one / 'supernet').mkdir(parents=True)
    shutil.copy(two / 'supernet' / 'supernet_final.pth', one / 'supernet' / 'supernet_final.pth')
    run_tool(['python', 'tools/search.py', TOY_CONFIG, '--work-dir', str(one),
              '--cfg-options', *shrunk_search_options(toy_coco)], env_extra=ONE_THREAD, check=True)

    two_candidates, one_candidates = read_candidates(two), read_candidates(one)
    assert [c['arch'] for c in two_candidates] == [c['arch'] for c in one_candidates]
    assert [c['score'] for c in two_candidates] == [c['score'] for c in one_candidates]
    assert best_without_timings(two) == best_without_timings(one)
