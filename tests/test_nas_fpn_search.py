"""NAS-FPN end to end: a toy controller search through tools/search.py, the found
pyramid fine-tuned with tools/train.py and tested with tools/test.py, and the
estimator and pictures on their own."""
import json
import random
import re
import sys

import pytest
import torch

from conftest import (ONE_THREAD, assert_scores_vary, free_port, is_png, kill_search_after,
                      read_candidates, run_tool)
from search_runs import NAS_FPN_BATCH, NAS_FPN_CONFIG, NAS_FPN_STEPS, nas_fpn_options

SEARCH_CONFIG = NAS_FPN_CONFIG
FINETUNE_CONFIG = 'configs/nas_fpn/retinanet_nas_fpn_finetune_toy.py'
STEPS, BATCH = NAS_FPN_STEPS, NAS_FPN_BATCH
shrunk_options = nas_fpn_options


@pytest.fixture
def search_dir(nas_fpn_search):
    return nas_fpn_search.work_dir


def test_search_records_every_sampled_pyramid(search_dir):
    from detection.nas_fpn import NASFPNSpace
    space = NASFPNSpace()
    candidates = read_candidates(search_dir)
    # One line per sampled architecture, one controller step per round.
    assert [c['round'] for c in candidates] == [step for step in range(STEPS) for _ in range(BATCH)]
    assert len({space.canonical(c['arch']) for c in candidates}) == STEPS * BATCH
    for candidate in candidates:
        space.validate(candidate['arch'])
        assert 0.0 <= candidate['score'] <= 1.0
        costs, metrics = candidate['costs'], candidate['metrics']
        assert costs['flops'] > 0 and costs['params'] > 0
        assert candidate['flops_convention'] == 'flops_mmengine'
        parts = [metrics[f'seconds_{part}'] for part in ('training', 'inference', 'coco_eval')]
        assert all(seconds > 0 for seconds in parts)
        assert costs['seconds'] >= sum(parts)
    # Each candidate trained in its own proxy Runner.
    assert len(list((search_dir / 'proxy').iterdir())) == STEPS * BATCH


def test_search_writes_the_best_pyramid_and_its_picture(search_dir):
    from detection.nas_fpn import NASFPNSpace
    document = json.loads((search_dir / 'best_arch.json').read_text())
    assert (document['space'], document['version']) == ('nas-fpn', 1)
    NASFPNSpace().validate(document['arch'])
    candidates = read_candidates(search_dir)
    best = max(candidates, key=lambda c: c['score'])
    assert document['arch'] == best['arch']
    assert document['metrics']['bbox_mAP'] == best['score']
    assert document['metrics']['flops'] == best['costs']['flops']
    assert is_png(search_dir / 'pyramid.png')
    assert is_png(search_dir / 'plots' / 'score_per_round.png')


def test_found_pyramid_trains_and_tests_with_the_tools(search_dir, toy_coco, tmp_path):
    from mmdet.registry import MODELS
    from nas_tasks.builder import load_config
    from nas_tasks.modules import register_all_modules
    arch_file = search_dir / 'best_arch.json'
    options = [f'data_root={toy_coco}/', f'model.neck.arch={arch_file}',
               'train_cfg.max_iters=4', 'train_cfg.val_interval=4',
               'default_hooks.checkpoint.interval=4']
    # The fine-tune config builds a detector whose neck is the found pyramid.
    register_all_modules('mmdet')  # the fine-tuning config's scope
    cfg = load_config(FINETUNE_CONFIG, {'model.neck.arch': str(arch_file)})
    neck = MODELS.build(cfg.model.neck)
    assert neck.arch == json.loads(arch_file.read_text())['arch']

    work_dir = tmp_path / 'finetune'
    run_tool(['python', 'tools/train.py', FINETUNE_CONFIG, '--work-dir', str(work_dir),
              '--cfg-options', *options], env_extra=ONE_THREAD, check=True)
    checkpoint = work_dir / 'iter_4.pth'
    state = torch.load(checkpoint, map_location='cpu', weights_only=True)['state_dict']
    stacked = {key.split('.')[2] for key in state if key.startswith('neck.stages.')}
    assert stacked == {'0', '1', '2'}, 'the fine-tune config stacks the pyramid 3 times'
    # After 4 iterations no score passes the default threshold of 0.05, and
    # CocoMetric reports nothing for an empty result.
    tested = run_tool(['python', 'tools/test.py', FINETUNE_CONFIG, str(checkpoint),
                       '--work-dir', str(work_dir),
                       '--cfg-options', *options, 'model.test_cfg.score_thr=0.0'],
                      env_extra=ONE_THREAD, check=True)
    match = re.search(r'^coco/bbox_mAP: ([0-9.]+)$', tested.stdout, re.MULTILINE)
    assert match and 0.0 <= float(match.group(1)) <= 1.0


@pytest.mark.slow
def test_two_processes_score_candidates_like_one(search_dir, toy_coco, tmp_path):
    """torchrun with 2 CPU processes: each rank trains whole candidates in its
    own single-process Runner; the scores equal those of the 1-process search."""
    work_dir = tmp_path / 'two_processes'
    run_tool([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
              '--master_port', free_port(), 'tools/search.py', SEARCH_CONFIG, '--launcher', 'pytorch',
              '--work-dir', str(work_dir), '--cfg-options', *shrunk_options(toy_coco)],
             env_extra=ONE_THREAD, check=True)
    one, two = read_candidates(search_dir), read_candidates(work_dir)
    assert_scores_vary(one)
    assert [c['arch'] for c in two] == [c['arch'] for c in one]
    assert [c['score'] for c in two] == [c['score'] for c in one]


@pytest.mark.slow
def test_killed_search_resumes_to_the_same_result(search_dir, toy_coco, tmp_path):
    """SIGKILL after the first controller step, then --resume: the same pyramids,
    scores and controller as the uninterrupted search."""
    work_dir = tmp_path / 'killed'
    command = ['python', 'tools/search.py', SEARCH_CONFIG, '--work-dir', str(work_dir),
               '--cfg-options', *shrunk_options(toy_coco)]
    kill_search_after(command, work_dir, BATCH, ONE_THREAD)

    run_tool([*command, '--resume'], env_extra=ONE_THREAD, check=True)
    straight, resumed = read_candidates(search_dir), read_candidates(work_dir)
    assert_scores_vary(straight)
    assert [(c['arch'], c['score']) for c in resumed] == [(c['arch'], c['score']) for c in straight]
    assert json.loads((work_dir / 'best_arch.json').read_text())['arch'] == \
        json.loads((search_dir / 'best_arch.json').read_text())['arch']


# -- the estimator and the pictures on their own --------------------------------

@pytest.fixture(scope='module')
def estimator(toy_coco):
    from nas_tasks.builder import load_config
    from nas_tasks.modules import register_all_modules
    from nas_tasks.registry import ESTIMATORS, SPACES
    register_all_modules()
    cfg = load_config(SEARCH_CONFIG, {'data_root': str(toy_coco)})
    space = SPACES.build(cfg.search_space)
    return ESTIMATORS.build(dict(cfg.estimator), default_args=dict(space=space, config=cfg, seed=0))


def test_neck_costs_follow_the_resolution_of_the_cells(estimator):
    from detection.nas_fpn.space import cells_to_arch
    outputs = [(0, 1, 3, 'sum'), (1, 2, 4, 'sum'), (2, 3, 5, 'sum'), (3, 4, 7, 'sum'),
               (4, 5, 6, 'sum')]
    fine = cells_to_arch([(0, 1, 4, 'sum'), (1, 5, 4, 'sum')] + outputs)
    coarse = cells_to_arch([(3, 4, 7, 'sum'), (4, 5, 7, 'sum')] + outputs)
    fine_costs, coarse_costs = estimator.costs(fine), estimator.costs(coarse)
    # Two intermediate cells at P4 (16x16 at 128 px) cost more than at P7 (1x1);
    # every cell has the same weights whatever its inputs and level.
    assert fine_costs['flops'] > coarse_costs['flops'] > 0
    assert fine_costs['params'] == coarse_costs['params'] > 0


def test_process_local_hides_the_process_group_and_restores_it():
    """A one-rank gloo group: inside process_local torch's, mmengine's and the suite's
    helpers see no group (a proxy training runs as in one process); after it, even
    after an exception, the same group is back and its collectives run."""
    import torch.distributed as torch_dist
    from mmengine import dist as mm_dist
    from nas_tasks import dist
    from nas_tasks.dist import process_local
    torch_dist.init_process_group('gloo', rank=0, world_size=1,
                                  init_method=f'tcp://127.0.0.1:{free_port()}')
    try:
        group = torch_dist.group.WORLD
        assert dist.is_distributed() and mm_dist.get_backend() == 'gloo'
        with pytest.raises(RuntimeError, match='a failing proxy training'), process_local():
            assert not torch_dist.is_initialized() and not dist.is_distributed()
            assert mm_dist.get_backend() is None and mm_dist.get_dist_info() == (0, 1)
            raise RuntimeError('a failing proxy training')
        assert torch_dist.is_initialized() and dist.is_distributed()
        assert mm_dist.get_backend() == 'gloo' and torch_dist.group.WORLD is group
        total = torch.ones(2)
        torch_dist.all_reduce(total)  # the group still works
        assert total.tolist() == [1.0, 1.0]
    finally:
        torch_dist.destroy_process_group()


@pytest.fixture
def drawn_figures(monkeypatch):
    """The figures the plotting functions save, kept open for inspection."""
    import detection.nas_fpn.plots as pyramid_plots
    import nas_tasks.plots as core_plots
    figures = []

    def keep(figure, path):
        figures.append(figure)
        figure.savefig(path)  # _save_atomically closes the figure
    for module in (pyramid_plots, core_plots):
        monkeypatch.setattr(module, '_save_atomically', keep)
    yield figures
    for figure in figures:
        core_plots.plt.close(figure)


def test_draw_pyramid_pictures_any_valid_architecture(tmp_path, drawn_figures):
    from detection.nas_fpn import NASFPNSpace
    from detection.nas_fpn.plots import draw_pyramid
    space = NASFPNSpace(num_cells=9)
    arch = space.sample(random.Random(0))
    draw_pyramid(arch, tmp_path / 'sampled.png')
    assert is_png(tmp_path / 'sampled.png')
    axes = drawn_figures[0].axes[0]
    boxes = [text for text in axes.texts if text.get_text()]
    arrows = [text for text in axes.texts if not text.get_text()]
    specs = space.cell_specs(arch)
    # A box per input feature at (0, level), then one per cell at (cell + 1, its level).
    assert [box.get_text() for box in boxes[:5]] == ['P3', 'P4', 'P5', 'P6', 'P7']
    assert [tuple(box.get_position()) for box in boxes] == \
        [(0, level) for level in range(3, 8)] + [(cell + 1, spec.level)
                                                 for cell, spec in enumerate(specs)]
    for cell, (box, spec) in enumerate(zip(boxes[5:], specs)):
        op = 'global pool' if spec.op == 'global_pool' else 'sum'
        assert box.get_text().split('\n')[:2] == [f'cell {cell}', op]
        assert ('out P' in box.get_text()) == space.is_output_cell(cell)
    # An arrow per cell input and per unused feature an output cell adds.
    assert len(arrows) == sum(2 + len(spec.unused_inputs) for spec in specs)


def test_draw_pyramid_rejects_an_invalid_architecture(tmp_path):
    from detection.nas_fpn import NASFPNSpace
    from detection.nas_fpn.plots import draw_pyramid
    from nas_tasks.errors import ArchError
    draw_pyramid('nas_fpn', tmp_path / 'published.png')
    assert is_png(tmp_path / 'published.png')
    bad = dict(NASFPNSpace().sample(random.Random(0)), **{'cell0.input1': 99})
    with pytest.raises(ArchError):
        draw_pyramid(bad, tmp_path / 'bad.png')
    assert not (tmp_path / 'bad.png').exists()


def test_plot_controller_rewards_draws_mean_best_and_baseline(tmp_path, drawn_figures):
    import math
    from nas_tasks.plots import plot_controller_rewards
    # A step without a usable reward (NaN) and a missing baseline leave gaps.
    history = [(0, 0.10, 0.20, None), (1, 0.15, 0.30, 0.11), (2, float('nan'), float('nan'), 0.12)]
    plot_controller_rewards(history, tmp_path / 'rewards.png')
    assert is_png(tmp_path / 'rewards.png')
    lines = {line.get_label(): line for line in drawn_figures[0].axes[0].get_lines()}
    assert set(lines) == {'mean of batch', 'best in batch', 'baseline'}
    for label, expected in (('mean of batch', [0.10, 0.15, math.nan]),
                            ('best in batch', [0.20, 0.30, math.nan]),
                            ('baseline', [math.nan, 0.11, 0.12])):
        assert list(lines[label].get_xdata()) == [0, 1, 2]
        values = list(lines[label].get_ydata())
        assert [math.isnan(v) for v in values] == [math.isnan(v) for v in expected]
        assert ([v for v in values if not math.isnan(v)]
                == [v for v in expected if not math.isnan(v)])
