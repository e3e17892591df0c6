"""End to end: DetNAS toy search through tools/search.py, kill + resume, 2 processes."""
import json
import shutil
import sys

import pytest
import torch

from conftest import (ONE_THREAD, TOY_CONFIG, assert_scores_vary, free_port, kill_search_after,
                      read_candidates, run_tool, shrunk_search_options)




def best_without_timings(work_dir):
    """best_arch.json without the wall-clock values, which differ from run to run."""
    document = json.loads((work_dir / 'best_arch.json').read_text())
    document['metrics'] = {k: v for k, v in document['metrics'].items() if 'seconds' not in k}
    return document


# Enough supernet training that candidates get clearly different mAPs (measured
# on the test's toy set: 0.009-0.032 over 8 candidates, all distinct), and every
# box counts, so that no candidate's mAP is an empty-result 0.
SUPERNET_ITERS = 250


def search_options(data_root, supernet_iters=SUPERNET_ITERS) -> list[str]:
    return shrunk_search_options(data_root, supernet_iters) + ['model.test_cfg.score_thr=0.0']


def copy_supernet(source, work_dir):
    (work_dir / 'supernet').mkdir(parents=True)
    shutil.copy(source / 'supernet' / 'supernet_final.pth', work_dir / 'supernet' / 'supernet_final.pth')


@pytest.fixture(scope='module')
def straight_run(toy_coco, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('detnas') / 'straight'
    result = run_tool(['python', 'tools/search.py', TOY_CONFIG, '--work-dir', str(work_dir),
                       '--cfg-options', *search_options(toy_coco)],
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


def test_rerun_of_a_finished_search_reexports_the_same_best(straight_run, toy_coco):
    """What `bash demo.sh` does the second time: --resume on a finished search."""
    work_dir, first = straight_run
    before = best_without_timings(work_dir)
    again = run_tool(['python', 'tools/search.py', TOY_CONFIG, '--work-dir', str(work_dir),
                      '--resume', '--cfg-options', *search_options(toy_coco)],
                     env_extra=ONE_THREAD, check=True)
    assert 'best architecture:' in again.stdout
    assert again.stdout.splitlines()[-2:] == first.stdout.splitlines()[-2:]
    assert best_without_timings(work_dir) == before
    assert len(read_candidates(work_dir)) == 8


def test_found_backbone_starts_fine_tuning_from_the_exported_weights(straight_run, toy_coco,
                                                                      tmp_path):
    """The hand-off: the weights the real estimator exported (sliced from the
    supernet after BN recalibration) are the values the fine-tuned detector starts from."""
    from nas_tasks.runner import build_runner
    work_dir, _ = straight_run
    exported = torch.load(work_dir / 'best_subnet.pth', weights_only=True)['state_dict']
    runner = build_runner('configs/detnas/retinanet_detnas_finetune_toy.py', str(tmp_path), 'none', {
        'data_root': f'{toy_coco}/',
        'model.backbone.arch': str(work_dir / 'best_arch.json'),
        'model.backbone.init_cfg.checkpoint': str(work_dir / 'best_subnet.pth')})
    backbone = runner.model.backbone
    initial = {k: v.clone() for k, v in backbone.state_dict().items()}
    runner.model.init_weights()
    loaded = backbone.state_dict()
    assert set(loaded) == set(exported)
    assert all(torch.equal(loaded[k], exported[k]) for k in exported)
    # The values moved away from a fresh backbone's (weights and BN statistics alike),
    # so the equality above is not that of two defaults.
    changed = {k for k in exported if not torch.equal(initial[k], exported[k])}
    assert any(k.endswith('running_var') for k in changed) and any(k.endswith('weight') for k in changed)


def test_killed_search_resumes_to_the_same_result(straight_run, toy_coco, tmp_path):
    """Killed (SIGKILL) while it scores candidates, then resumed. It reuses the
    straight run's supernet, so both runs rank candidates with the same weights."""
    straight_dir, _ = straight_run
    work_dir = tmp_path / 'killed'
    copy_supernet(straight_dir, work_dir)
    command = ['python', 'tools/search.py', TOY_CONFIG, '--work-dir', str(work_dir),
               '--cfg-options', *search_options(toy_coco)]
    kill_search_after(command, work_dir, 4, ONE_THREAD)

    run_tool([*command, '--resume'], env_extra=ONE_THREAD, check=True)
    assert_scores_vary(read_candidates(straight_dir))
    assert best_without_timings(work_dir) == best_without_timings(straight_dir)
    assert [(c['arch'], c['score']) for c in read_candidates(work_dir)] == \
        [(c['arch'], c['score']) for c in read_candidates(straight_dir)]


def test_two_processes_score_candidates_like_one(straight_run, toy_coco, tmp_path):
    """torchrun with 2 CPU processes (gloo): DDP supernet training, candidates split across ranks.

    The 2-process supernet starts from the straight run's trained weights
    (``load_from``) and trains 20 more iterations under DDP, so its candidates
    rank. The 1-process run reuses the supernet the 2-process run trained, so
    both score the same weights: equal scores show the split evaluation and
    the gathering are exact.
    """
    straight_dir, _ = straight_run
    options = [*search_options(toy_coco, supernet_iters=20),
               f'load_from={straight_dir}/supernet/supernet_final.pth']
    two = tmp_path / 'two_processes'
    run_tool([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
              '--master_port', free_port(), 'tools/search.py', TOY_CONFIG, '--launcher', 'pytorch',
              '--work-dir', str(two), '--cfg-options', *options],
             env_extra=ONE_THREAD, check=True)
    one = tmp_path / 'one_process'
    copy_supernet(two, one)
    run_tool(['python', 'tools/search.py', TOY_CONFIG, '--work-dir', str(one),
              '--cfg-options', *options], env_extra=ONE_THREAD, check=True)

    two_candidates, one_candidates = read_candidates(two), read_candidates(one)
    assert_scores_vary(two_candidates)
    assert [c['arch'] for c in two_candidates] == [c['arch'] for c in one_candidates]
    assert [c['score'] for c in two_candidates] == [c['score'] for c in one_candidates]
    assert best_without_timings(two) == best_without_timings(one)
