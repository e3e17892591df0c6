"""End to end: DetNAS toy search through tools/search.py (the session's shared run),
the re-export on --resume, the refusal to overwrite, the weight hand-off, kill +
resume and 2 processes."""
import json
import shutil
import sys

import pytest
import torch

from conftest import (ONE_THREAD, TOY_CONFIG, assert_scores_vary, free_port, kill_search_after, snapshot,
                      read_candidates, run_tool)
from nas_tasks.cli import parse_cfg_options
from search_runs import detnas_options as search_options



def best_without_timings(work_dir):
    """best_arch.json without the wall-clock values, which differ from run to run."""
    document = json.loads((work_dir / 'best_arch.json').read_text())
    document['metrics'] = {k: v for k, v in document['metrics'].items() if 'seconds' not in k}
    return document


def copy_supernet(source, work_dir):
    (work_dir / 'supernet').mkdir(parents=True)
    shutil.copy(source / 'supernet' / 'supernet_final.pth', work_dir / 'supernet' / 'supernet_final.pth')


@pytest.fixture
def straight_run(detnas_search):
    return detnas_search.work_dir, detnas_search.result


def test_search_writes_best_arch_with_map_and_flops(straight_run):
    work_dir, result = straight_run
    document = json.loads((work_dir / 'best_arch.json').read_text())
    assert document['space'] == 'detnas-small' and len(document['arch']) == 20
    metrics = document['metrics']
    assert 0.0 <= metrics['bbox_mAP'] <= 1.0
    assert metrics['flops'] <= 300e6, 'the FLOPs constraint of the config was not respected'
    assert metrics['flops_convention'] == 'macs_conv_matmul'  # the official DetNAS FLOPs
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


def test_the_supernet_checkpoint_records_its_world_size(straight_run):
    """What a resume on another number of processes is checked against
    (tests/test_detnas_supernet_world_size.py)."""
    from nas_tasks.world_size import WORLD_SIZE_KEY
    from search_runs import DETNAS_SUPERNET_ITERS
    work_dir, _ = straight_run
    checkpoint = torch.load(work_dir / 'supernet' / f'iter_{DETNAS_SUPERNET_ITERS}.pth',
                            weights_only=True)
    assert checkpoint['meta'][WORLD_SIZE_KEY] == 1


def test_rerun_of_a_finished_search_reexports_the_same_best(detnas_search, tmp_path):
    """What `bash demo.sh` does the second time: --resume on a finished search."""
    first = detnas_search.result
    work_dir = detnas_search.copy_to(tmp_path / 'finished')
    before = best_without_timings(work_dir)
    again = run_tool([*detnas_search.command(work_dir), '--resume'], env_extra=ONE_THREAD,
                     check=True)
    assert 'best architecture:' in again.stdout
    # The same score and costs, printed with the copy's path.
    assert again.stdout.splitlines()[-2:] == [
        f"best architecture: {work_dir / 'best_arch.json'}", first.stdout.splitlines()[-1]]
    assert best_without_timings(work_dir) == before
    assert len(read_candidates(work_dir)) == 8


def test_finished_search_is_not_overwritten(detnas_search):
    """Without --resume, a work directory that holds a search is refused before anything
    is written (the one-line conversion of the error: tests/test_bad_inputs.py)."""
    from nas_tasks.errors import NasError
    from nas_tasks.search import run_search
    work_dir = detnas_search.work_dir
    before = snapshot(work_dir)
    with pytest.raises(NasError, match='--resume') as error:
        run_search(TOY_CONFIG, str(work_dir), False, parse_cfg_options(detnas_search.options),
                   'none')
    assert str(work_dir) in str(error.value)
    assert snapshot(work_dir) == before


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


@pytest.mark.slow
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


@pytest.mark.slow
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
