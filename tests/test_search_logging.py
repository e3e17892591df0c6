"""Search scalars through mmengine's Visualizer, read back with TensorBoard's own reader:
per round best, mean, worst and failures; the controller's reward, baseline and entropy;
a differentiable search's losses and architecture-weight entropies. Nothing without a
visualizer, no RNG touched, and a killed search resumes with its scalars."""
import hashlib
import itertools
import json
import math
import random

import numpy as np
import pytest
import torch
from mmengine.config import Config
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import one_torch_thread, read_candidates
from nas_tasks.errors import NasError
from nas_tasks.estimators.base import Estimator
from nas_tasks.loop import SearchLoop
from nas_tasks.registry import ESTIMATORS
from nas_tasks.result import Result
from nas_tasks.search import build_search, run_search
from nas_tasks.search_logging import SearchLog
from nas_tasks.strategies import MultiLevelSearch, ReinforceController
from stand_in_estimators import DriftingSharedEstimator, key, make_space
from test_multi_level import CONTROLLER, STAGES, first_options
from test_multi_level import make_space as make_staged_space
from test_report_html import PageText, click_through, needs_chromium

TENSORBOARD = dict(visualizer=dict(type='Visualizer', vis_backends=[dict(type='TensorboardVisBackend')]))
# Rounds of the multi-level search below: 2 controller steps, then a grow round, per stage.
CONTROLLER_ROUNDS, GROW_ROUNDS = [0, 1, 3, 4, 6, 7], [2, 5, 8]


@ESTIMATORS.register_module(force=True)
class SometimesFailingEstimator(Estimator):
    """How many decisions take their first option, plus a fraction from the arch's
    digest (so scores rarely tie); an arch whose digest ends in 0, 1 or 2 raises."""

    def __init__(self, space=None, config=None, seed=0):
        pass

    def evaluate(self, archs):
        (arch,) = archs
        digest = hashlib.sha1(key(arch).encode()).hexdigest()
        if digest[-1] in '012':
            raise RuntimeError('simulated failure')
        return [Result(first_options(arch) + int(digest[:4], 16) / 65536)]


def search_config(**extra) -> Config:
    return Config(dict(
        search_space=dict(type='StagedSpace', stages=STAGES, name='cells'),
        strategy=dict(type='MultiLevelSearch', stage_steps=[2, 2, 2], num_candidates=4, top_k=2,
                      controller=CONTROLLER),
        estimator=dict(type='SometimesFailingEstimator'), search=dict(seed=3), **extra))


def logged_scalars(log_dir) -> dict[str, list[tuple[int, float]]]:
    """Every scalar under ``log_dir``, read by TensorBoard's own reader: tag -> [(step, value)]."""
    accumulator = EventAccumulator(str(log_dir), size_guidance={'scalars': 0})
    accumulator.Reload()
    return {tag: [(event.step, event.value) for event in accumulator.Scalars(tag)]
            for tag in accumulator.Tags()['scalars']}


def f32(value: float) -> float:
    """TensorBoard stores scalars as float32."""
    return float(np.float32(value))


def round_stats(records: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """The per-round numbers a search must log, computed from its candidates.jsonl."""
    stats = {'search/failed': [], 'search/candidates': [], 'search/best': [], 'search/mean': [],
             'search/worst': []}
    for round_index in sorted({r['round'] for r in records}):
        scores = [r['score'] for r in records if r['round'] == round_index]
        ok = [s for s in scores if s is not None]
        stats['search/failed'].append((round_index, float(len(scores) - len(ok))))
        stats['search/candidates'].append((round_index, float(len(scores))))
        if ok:
            for name, value in (('best', max(ok)), ('mean', sum(ok) / len(ok)), ('worst', min(ok))):
                stats[f'search/{name}'].append((round_index, f32(value)))
    return stats


@pytest.fixture(scope='module')
def logged_search(tmp_path_factory):
    """The multi-level search with the TensorBoard backend: (work dir, loop)."""
    work_dir = tmp_path_factory.mktemp('logged') / 'search'
    loop = build_search(search_config(**TENSORBOARD), work_dir)
    with one_torch_thread():
        loop.run()
    return work_dir, loop


def test_round_scalars_reach_tensorboard(logged_search):
    work_dir, loop = logged_search
    records = read_candidates(work_dir)
    logged = logged_scalars(work_dir / 'vis_data')
    expected = round_stats(records)
    assert [step for step, _ in expected['search/candidates']] == list(range(9))
    assert sum(value for _, value in expected['search/failed']) > 0, 'no failure: the test shows less'
    assert len({r['score'] for r in records}) > 10
    for tag, values in expected.items():
        assert logged[tag] == values, tag
    # The best so far is the loop's best record: while the search runs, the best
    # whole candidate (a prefix is no result), logged once one has succeeded; once
    # a multi-level search is done, the best of its last stage's candidates, which
    # were scored together.
    best_so_far, running = [], -math.inf
    for step in range(8):
        whole = [r['score'] for r in records if r['round'] == step and len(r['arch']) == 8
                 and r['score'] is not None]
        running = max([running, *whole])
        if running > -math.inf:
            best_so_far.append((step, f32(running)))
    final = [r['score'] for r in records if r['round'] == 8 and r['score'] is not None]
    assert loop.best_record()['score'] == max(final) < running, 'the test shows less'
    assert logged['search/best_so_far'] == best_so_far + [(8, f32(max(final)))]


def test_controller_scalars_reach_tensorboard(logged_search):
    work_dir, loop = logged_search
    logged = logged_scalars(work_dir / 'vis_data')
    # One value per controller step, at its loop round; none in a grow round.
    assert logged['controller/stage'] == [(r, float(r // 3)) for r in CONTROLLER_ROUNDS]
    steps = list(itertools.chain.from_iterable(loop.strategy.finished_histories))
    assert len(steps) == len(CONTROLLER_ROUNDS)
    rounds = dict(zip(CONTROLLER_ROUNDS, steps))  # loop round -> (step, mean, best, baseline)
    for tag, index in (('controller/reward', 1), ('controller/reward_best', 2),
                       ('controller/baseline', 3)):
        assert logged[tag] == [(r, f32(entry[index])) for r, entry in rounds.items()
                               if math.isfinite(entry[index])], tag
    # The reward is the batch's mean score (no entropy in the reward here).
    means = dict(logged['search/mean'])
    assert [(r, means[r]) for r, _ in logged['controller/reward']] == logged['controller/reward']
    entropies = [value for _, value in logged['controller/entropy']]
    assert [r for r, _ in logged['controller/entropy']] == [r for r, _ in logged['controller/reward']]
    assert all(0 < value <= math.log(2 * 3 * 4) + 1e-6 for value in entropies)
    assert len(set(entropies)) > 1


def test_controller_log_scalars_are_its_updates_numbers():
    space = make_space()
    controller = ReinforceController(space, num_steps=3, batch_size=4, hidden_size=16, lr=0.05, seed=1)
    assert controller.log_scalars() == {}
    archs = controller.ask()
    with torch.no_grad():
        _, entropy = controller.log_prob_and_entropy(archs)
    scores = [1.0, 3.0, math.nan, 2.0]
    controller.tell(archs, [Result(score) for score in scores])
    assert controller.log_scalars() == {
        'controller/reward': 2.0, 'controller/reward_best': 3.0,
        'controller/baseline': controller.history[-1][3],
        # Of the archs the update used: the failed one is left out.
        'controller/entropy': float(entropy[[0, 1, 3]].mean())}
    archs = controller.ask()
    controller.tell(archs, [Result(math.nan) for _ in archs])  # all failed: no update
    scalars = controller.log_scalars()
    assert math.isnan(scalars['controller/reward']) and math.isnan(scalars['controller/entropy'])


def test_multi_level_scalars_name_the_stage_and_skip_grow_rounds():
    search = MultiLevelSearch(make_staged_space(), stage_steps=(1, 1, 1), num_candidates=3, top_k=2,
                              controller=CONTROLLER, seed=3)
    seen = []
    while not search.done:
        archs = search.ask(0)
        search.tell(archs, [Result(first_options(arch)) for arch in archs])
        seen.append(search.log_scalars().get('controller/stage'))
    assert seen == [0.0, None, 1.0, None, 2.0, None]


def test_logging_draws_no_random_number(tmp_path):
    log = SearchLog.from_config(Config(TENSORBOARD), tmp_path)
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    before = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state())
    log.open()
    log.add({'search/best': 1.5, 'search/mean': math.nan, 'controller/baseline': None}, step=0)
    log.close()
    after = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state())
    assert before[0] == after[0] and (before[1] == after[1]).all() and torch.equal(before[2], after[2])
    assert logged_scalars(tmp_path / 'vis_data') == {'search/best': [(0, 1.5)]}  # NaN, None dropped


def test_an_unknown_backend_is_one_line_before_anything_is_written(tmp_path):
    cfg = Config(dict(visualizer=dict(type='Visualizer', vis_backends=[dict(type='NoSuchVisBackend')])))
    with pytest.raises(NasError, match="NoSuchVisBackend"):
        SearchLog.from_config(cfg, tmp_path / 'w')
    assert not (tmp_path / 'w').exists()


def drifting_loop(work_dir, estimator, log: bool):
    space = make_space()
    controller = ReinforceController(space, num_steps=4, batch_size=4, hidden_size=16, lr=0.05,
                                     allow_repeats=True, seed=3)
    search_log = SearchLog.from_config(Config(TENSORBOARD), work_dir) if log else None
    return SearchLoop(space, controller, estimator, work_dir, candidates_per_round=4,
                      search_log=search_log)


def test_a_killed_search_resumes_with_its_scalars_and_without_a_visualizer_logs_nothing(tmp_path):
    drifting_loop(tmp_path / 'straight', DriftingSharedEstimator(), log=False).run()
    assert not (tmp_path / 'straight' / 'vis_data').exists()
    killed = tmp_path / 'killed'
    with pytest.raises(KeyboardInterrupt):
        drifting_loop(killed, DriftingSharedEstimator(kill_at=11), log=True).run()  # in round 2
    assert [step for step, _ in logged_scalars(killed / 'vis_data')['search/best']] == [0, 1]
    drifting_loop(killed, DriftingSharedEstimator(), log=True).run(resume=True)
    straight = read_candidates(tmp_path / 'straight')
    assert len({r['score'] for r in straight}) > 8
    # Logging changed nothing: the logged, killed and resumed search is the unlogged one.
    assert read_candidates(killed) == straight
    logged = logged_scalars(killed / 'vis_data')
    for tag, values in round_stats(straight).items():
        assert logged[tag] == values, tag
    assert [step for step, _ in logged['controller/baseline']] == list(range(4))


# -- a differentiable search -----------------------------------------------------------

AUTO_DEEPLAB = 'configs/auto_deeplab/auto_deeplab_toy.py'


def shrunk_auto_deeplab(data_root) -> dict:
    """A 3-layer, F = 2 trellis; 2 epochs of 1 iteration, architecture steps in the second."""
    search = 'differentiable_search'
    return {'data_root': f'{data_root}/', f'{search}.network.num_layers': 3,
            f'{search}.network.filter_multiplier': 2, f'{search}.trainer.epochs': 2,
            f'{search}.trainer.arch_start_epoch': 1, f'{search}.trainer.max_iters_per_epoch': 1,
            f'{search}.eval_interval': 0, **TENSORBOARD}


def entropy(weights) -> float:
    """Mean entropy of the rows of normalised weights that hold any weight."""
    rows = torch.tensor(weights, dtype=torch.float64).flatten(0, -2)
    rows = rows[rows.sum(-1) > 0]
    return float(torch.distributions.Categorical(probs=rows).entropy().mean())


@pytest.fixture(scope='module')
def differentiable_search(toy_cityscapes, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('logged_differentiable') / 'auto_deeplab'
    with one_torch_thread():  # in this process; a second thread mostly waits on a busy machine
        run_search(AUTO_DEEPLAB, str(work_dir), False, shrunk_auto_deeplab(toy_cityscapes), 'none')
    state = torch.load(work_dir / 'search_state.pth', map_location='cpu', weights_only=True)
    return work_dir, state['history']


@pytest.mark.slow  # a whole Auto-DeepLab search beside the session's
def test_differentiable_scalars_reach_tensorboard(differentiable_search):
    work_dir, history = differentiable_search
    logged = logged_scalars(work_dir / 'vis_data')
    assert len(history) == 2 and history[0]['arch_loss'] is None
    assert logged['loss/weight'] == [(r['epoch'] + 1, f32(r['weight_loss'])) for r in history]
    assert logged['loss/arch'] == [(2, f32(history[1]['arch_loss']))]  # none in the warm-up
    assert logged['lr'] == [(r['epoch'] + 1, f32(r['lr'])) for r in history]
    assert 'arch/cost' not in logged  # Auto-DeepLab has no cost term
    for group in ('alpha', 'beta'):
        values = logged[f'arch/entropy_{group}']
        assert [step for step, _ in values] == [1, 2]
        assert [value for _, value in values] == pytest.approx(
            [entropy(r['arch_weights'][group]) for r in history], rel=1e-6)
    # The architecture step of epoch 2 moved alpha, so its entropy changed.
    assert logged['arch/entropy_alpha'][0][1] != logged['arch/entropy_alpha'][1][1]


@needs_chromium
def test_differentiable_report_shows_the_epochs_and_the_pictures(differentiable_search, tmp_path):
    work_dir, history = differentiable_search
    page = PageText((work_dir / 'report.html').read_text())
    result = json.loads((work_dir / 'best_arch.json').read_text())
    assert page.by_id['best-score'] == f"{result['metrics']['mIoU']:.6g}"
    assert page.by_id['epoch-count'] == '2'
    assert page.column('epoch') == ['1', '2'] and page.column('arch_loss')[0] == ''
    assert [float(v) for v in page.column('entropy:beta')] == pytest.approx(
        [entropy(r['arch_weights']['beta']) for r in history], rel=1e-6)
    clicks = click_through(tmp_path, work_dir / 'report.html', ['weight_loss'])
    losses = [float(v) for v in clicks['clicks'][0]['columns']['weight_loss']]
    assert losses == sorted(losses, reverse=True) and len(set(losses)) == 2
    assert sorted(name for name, width, _ in clicks['images'] if width > 50) == [
        'arch_alpha.png', 'arch_beta.png', 'cell.png', 'path.png']
