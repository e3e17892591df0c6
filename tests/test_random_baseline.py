"""The random baseline of tools/diagnose.py (--random N): the draws (the search's space
under its limits, seeded), the percentile arithmetic and its words, and the whole path
on stand-in recipes (sample-based and differentiable configs, failures, resume); the
DetNAS toy end to end is in the slow tier."""
import json
import random
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ONE_THREAD, REPO, TOY_CONFIG, free_port, is_png, run_tool
from nas_tasks.diagnostics.random_draws import SpaceSample, draw_distinct
from nas_tasks.diagnostics.statistics import bootstrap_indices, percentile_among, pick_against_random
from nas_tasks.diagnostics.verdict import random_baseline_verdict
from nas_tasks.errors import NasError
from nas_tasks.space import CategoricalSpace
from stand_in_estimators import SEED, STRATEGY, TOY_CHOICES, count_a, make_space
from stand_in_recipes import ALL_B, KILL_AFTER, standalone_score

sys.path.insert(0, str(REPO / 'tests'))  # custom_imports of the configs below

SAMPLES = 2000


# -- the draws -------------------------------------------------------------------------
def count_d(arch):
    return sum(value == 'd' for value in arch.values())


def test_draws_are_distinct_within_the_limits_and_seeded():
    space = make_space()
    within = SpaceSample(space, lambda arch: count_d(arch) <= 1)
    drawn = draw_distinct(within, 40, seed=3, canonical=space.canonical)
    assert len({space.canonical(arch) for arch in drawn}) == 40
    assert all(count_d(arch) <= 1 for arch in drawn)
    unlimited = draw_distinct(SpaceSample(space, None), 40, seed=3, canonical=space.canonical)
    assert any(count_d(arch) > 1 for arch in unlimited), 'the limit is what keeps them out'
    assert draw_distinct(within, 40, seed=3, canonical=space.canonical) == drawn
    assert draw_distinct(within, 40, seed=4, canonical=space.canonical) != drawn
    # N draws are the first N of N + 10: a larger baseline reuses the trainings of a smaller.
    assert draw_distinct(within, 50, seed=3, canonical=space.canonical)[:40] == drawn


def test_a_space_too_small_for_n_distinct_draws_is_one_line():
    space = CategoricalSpace({'a': [0, 1, 2]}, name='tiny')
    assert len(draw_distinct(SpaceSample(space, None), 3, seed=0, canonical=space.canonical)) == 3
    with pytest.raises(NasError, match='only 3 distinct architectures .* ask for fewer'):
        draw_distinct(SpaceSample(space, None), 4, seed=0, canonical=space.canonical)


def test_detnas_draws_meet_the_searchs_flops_limit_with_its_cost_table(toy_coco):
    """The core builds the search's constraint (estimator's cost model) and draws under it.
    (The estimator checks its data: the session's toy set stands in for the config's.)"""
    from nas_tasks.builder import build_component, load_config
    from nas_tasks.diagnostics.random_draws import build_random_architectures
    from nas_tasks.modules import register_all_modules
    from nas_tasks.registry import COST_MODELS, SPACES
    register_all_modules()
    limit = 290e6  # tighter than the config's 300M: about half the uniform draws exceed it
    cfg = load_config(str(REPO / TOY_CONFIG), {'search.constraints.flops.max': limit,
                                               'data_root': f'{toy_coco}/'})
    space = build_component(SPACES, cfg.search_space, 'search_space')
    costs = build_component(COST_MODELS, cfg.estimator.cost_model, 'cost_model').costs
    source = build_random_architectures(cfg, space, None, seed=1, work_dir=Path('unused'))
    drawn = draw_distinct(source, 12, seed=1, canonical=space.canonical)
    assert all(costs(arch)['flops'] <= limit for arch in drawn)
    rng = random.Random(0)
    assert any(costs(space.sample(rng))['flops'] > limit for _ in range(50)), 'the limit binds'


# -- percentile and intervals on hand-made numbers ---------------------------------------
RANDOM = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]


def standing(pick, scores=RANDOM, seed=0):
    return pick_against_random(pick, scores, bootstrap_indices(len(scores), SAMPLES, seed))


def test_percentile_counts_ties_half():
    assert percentile_among(0.9, RANDOM) == 100.0
    assert percentile_among(0.0, RANDOM) == 0.0
    assert percentile_among(0.45, RANDOM) == 50.0
    assert percentile_among(0.4, RANDOM) == pytest.approx(100 * 3.5 / 8)
    assert percentile_among(0.3, [0.3, 0.3, 0.3]) == 50.0


def test_a_pick_above_every_random_one_has_a_degenerate_interval_at_100():
    above = standing(0.95)
    assert above['percentile'] == dict(value=100.0, ci=[100.0, 100.0])
    assert above['minus_median']['median'] == pytest.approx(0.45)
    assert above['minus_median']['value'] == pytest.approx(0.5)
    low, high = above['minus_median']['ci']
    assert 0 < low < 0.5 < high  # the resampled medians vary


def test_a_pick_below_every_random_one_sits_at_0():
    below = standing(0.05)
    assert below['percentile'] == dict(value=0.0, ci=[0.0, 0.0])
    assert below['minus_median']['ci'][1] < 0


def test_a_pick_in_the_middle_has_an_interval_that_covers_the_median():
    middle = standing(0.45)
    assert middle['percentile']['value'] == 50.0
    low, high = middle['percentile']['ci']
    assert low < 50 < high and 0 <= low and high <= 100
    assert middle['minus_median']['value'] == pytest.approx(0.0)
    assert middle['minus_median']['ci'][0] < 0 < middle['minus_median']['ci'][1]


def test_the_interval_is_the_bootstrap_percentile_of_the_resampled_percentiles():
    rng = np.random.default_rng(5)
    scores = list(rng.normal(size=12))
    indices = bootstrap_indices(12, SAMPLES, 1)
    result = pick_against_random(0.3, scores, indices)
    by_hand = [percentile_among(0.3, np.asarray(scores)[row]) for row in indices]
    assert result['percentile']['ci'] == pytest.approx(list(np.percentile(by_hand, [2.5, 97.5])))
    medians = [0.3 - np.median(np.asarray(scores)[row]) for row in indices]
    assert result['minus_median']['ci'] == pytest.approx(list(np.percentile(medians, [2.5, 97.5])))
    assert len(set(by_hand)) > 3 and len(set(medians)) > 3, 'the resamples differ'
    assert standing(0.3, scores, seed=1) == result


# -- the verdict's words -------------------------------------------------------------
def baseline_with(percentile_ci, pick=0.9, beats_best=True, failed=0, references=None):
    low, high = percentile_ci
    return dict(num_random=8 + failed, scored=8, failed=failed,
                pick=dict(standalone_score=pick),
                percentile=dict(value=(low + high) / 2, ci=list(percentile_ci)),
                minus_median=dict(value=0.1, median=0.4, ci=[0.01, 0.2]),
                best_random=dict(name='r3', standalone_score=0.8, pick_beats_it=beats_best),
                references=references or {}, beat_chance=low > 50, worse_than_chance=high < 50)


def test_the_verdict_says_whether_the_search_beat_chance():
    assert random_baseline_verdict(baseline_with([70, 100]), '95%').startswith(
        'The search beat chance on this run')
    unclear = random_baseline_verdict(baseline_with([30, 90], beats_best=False), '95%')
    assert unclear.startswith('On this run the search is not distinguishable from chance')
    assert 'more random architectures (--random)' in unclear
    assert 'does not beat the best random architecture (r3' in unclear
    assert random_baseline_verdict(baseline_with([0, 40]), '95%').startswith(
        'The search did worse than chance on this run')
    words = random_baseline_verdict(baseline_with([70, 100], failed=2, references={
        'seed': dict(status='ok', standalone_score=0.5, percentile=62.5)}), '95%')
    assert "Reference 'seed' scores 0.5, above 62% of the random ones" in words
    assert '2 of 10 random trainings failed and are left out' in words


# -- the whole path, on stand-in recipes -----------------------------------------------
def sample_based_config(path: Path, **diagnose) -> str:
    """A toy search of the stand-in estimator, diagnosed with the stand-in recipe."""
    diagnose = dict(dict(num_candidates=4, standalone=dict(type='CountingRecipe'),
                         bootstrap_samples=500), **diagnose)
    path.write_text(
        "custom_imports = dict(imports=['stand_in_estimators', 'stand_in_recipes'], "
        "allow_failed_imports=False)\n"
        f"search_space = dict(type='CategoricalSpace', name='toy', choices={TOY_CHOICES!r})\n"
        f"strategy = dict(type='Evolution', **{STRATEGY!r})\n"
        "estimator = dict(type='FlakyEstimator', healthy=True)\n"
        f"search = dict(seed={SEED})\n"
        f"diagnose = {diagnose!r}\n")
    return str(path)


@pytest.fixture
def toy_search(tmp_path):
    """A finished toy search (stand-in estimator, no training: seconds) and its config."""
    from nas_tasks.search import run_search
    config = sample_based_config(tmp_path / 'toy.py')
    run_search(config, str(tmp_path / 'search'), False, {}, 'none')
    return config, tmp_path / 'search'


def diagnose(config, work_dir, num_random, **options):
    from nas_tasks.diagnostics.diagnosis import run_diagnosis
    return run_diagnosis(config, str(work_dir), dict(options, **{'diagnose.num_random': num_random}),
                         'none')


def trained_ids(work_dir: Path) -> set[str]:
    return {path.parent.name for path in (work_dir / 'diagnostics' / 'runs').glob('*/trained.json')}


def test_random_baseline_beside_the_ranking(toy_search):
    config, work_dir = toy_search
    report = diagnose(config, work_dir, 12)
    baseline = report['random_baseline']
    best = json.loads((work_dir / 'best_arch.json').read_text())['arch']
    assert baseline['pick']['arch'] == best
    assert baseline['pick']['standalone_score'] == pytest.approx(standalone_score(best, 8))  # seed + 1
    scores = [row['standalone_score'] for row in baseline['random']]
    assert len(scores) == 12 and len(set(scores)) == 12
    assert baseline['percentile']['value'] == percentile_among(baseline['pick']['standalone_score'], scores)
    # The search's pick maximises count_a, so it beats random picks: the stand-in's ground truth.
    assert count_a(best) > np.median([count_a(row['arch']) for row in baseline['random']])
    assert baseline['beat_chance'] and report['verdict'].count('The search beat chance') == 1
    assert report['agreement']['kendall_tau']['value'] is not None, 'the K part ran too'
    # One training per arch: the pick is also the search's best K candidate.
    ids = {row['id'] for row in report['candidates']} | {row['id'] for row in baseline['random']}
    assert trained_ids(work_dir) == ids | {baseline['pick']['id']}
    assert baseline['pick']['id'] == report['candidates'][0]['id']
    assert is_png(work_dir / 'diagnostics' / 'random_baseline.png')
    assert is_png(work_dir / 'diagnostics' / 'scatter.png')
    # The draws come from the space, seeded by the diagnosis seed alone.
    space = make_space()
    for row in baseline['random']:
        space.validate(row['arch'])
    again = diagnose(config, work_dir, 12)
    assert again['random_baseline']['random'] == baseline['random']


def test_random_only_skips_the_ranking_and_failures_are_left_out(toy_search):
    config, work_dir = toy_search
    best = json.loads((work_dir / 'best_arch.json').read_text())['arch']
    failing = next(option for option in 'dcb' if option != best['k0'])  # the pick trains
    report = diagnose(config, work_dir, 10, **{'diagnose.num_candidates': 0,
                                               'diagnose.standalone.fail_on': [failing]})
    baseline = report['random_baseline']
    failed = [row for row in baseline['random'] if row['status'] == 'failed']
    assert failed and all(row['arch']['k0'] == failing and row['standalone_score'] is None
                          for row in failed)
    assert baseline['failed'] == len(failed) and baseline['scored'] == 10 - len(failed)
    kept = [row['standalone_score'] for row in baseline['random'] if row['status'] == 'ok']
    assert baseline['percentile']['value'] == percentile_among(baseline['pick']['standalone_score'], kept)
    assert report['candidates'] == [] and report['agreement'] is None
    assert 'τ' not in report['verdict'] and f'{len(failed)} of 10 random trainings failed' in report['verdict']
    assert not (work_dir / 'diagnostics' / 'scatter.png').exists()


def test_the_pick_is_placed_by_the_lowest_of_its_seeds(toy_search):
    """diagnose.pick_seeds=3 trains the pick with seeds 8, 9 and 10 (diagnosis seed 8), each
    its own recorded training, and places it by the lowest score; a rerun trains nothing."""
    config, work_dir = toy_search
    options = {'diagnose.num_candidates': 0, 'diagnose.pick_seeds': 3}
    report = diagnose(config, work_dir, 6, **options)
    pick = report['random_baseline']['pick']
    expected = {seed: standalone_score(pick['arch'], seed) for seed in (8, 9, 10)}
    assert len(set(expected.values())) == 3  # the seeds change the stand-in's score
    assert {int(seed): score for seed, score in pick['seed_scores'].items()} == pytest.approx(expected)
    assert pick['standalone_score'] == pytest.approx(min(expected.values()))
    scores = [row['standalone_score'] for row in report['random_baseline']['random']]
    assert report['random_baseline']['percentile']['value'] == percentile_among(min(expected.values()),
                                                                                scores)
    assert 'lowest of its 3 trainings with different seeds' in report['verdict']
    records = sorted((work_dir / 'diagnostics' / 'pick_seeds').glob('*.json'))
    assert len(records) == 2 and len(trained_ids(work_dir)) == 6 + 1 + 2
    before = {path: path.stat().st_mtime_ns for path in records}
    diagnose(config, work_dir, 6, **options)
    assert {path: path.stat().st_mtime_ns for path in records} == before


def test_a_failed_pick_is_one_line(toy_search):
    config, work_dir = toy_search
    best = json.loads((work_dir / 'best_arch.json').read_text())['arch']
    with pytest.raises(NasError, match="the pick's standalone training failed") as error:
        diagnose(config, work_dir, 4, **{'diagnose.num_candidates': 0,
                                         'diagnose.standalone.fail_on': [best['k0']]})
    assert '\n' not in str(error.value)


def differentiable_config(path: Path) -> str:
    path.write_text(
        "custom_imports = dict(imports=['stand_in_recipes'], allow_failed_imports=False)\n"
        "differentiable_search = dict(type='NotBuiltByTheDiagnosis', seed=4)\n"
        "diagnose = dict(standalone=dict(type='CountingRecipe'), bootstrap_samples=500,\n"
        "                random_architectures=dict(type='ToyArchitectures'))\n")
    return str(path)


def write_best_arch(work_dir: Path, arch: dict) -> None:
    work_dir.mkdir(parents=True)
    (work_dir / 'best_arch.json').write_text(json.dumps(
        dict(space='toy', version=1, arch=arch, metrics=dict(score=0.5))))


def test_a_differentiable_search_is_diagnosed_against_its_tasks_random_architectures(tmp_path):
    config = differentiable_config(tmp_path / 'differentiable.py')
    pick = {name: 'a' for name in TOY_CHOICES}
    write_best_arch(tmp_path / 'search', pick)
    report = diagnose(config, tmp_path / 'search', 8)
    baseline = report['random_baseline']
    assert baseline['pick']['arch'] == pick and baseline['pick']['search_score'] == 0.5
    assert baseline['pick']['standalone_score'] == pytest.approx(standalone_score(pick, 5))  # seed + 1
    assert baseline['percentile'] == dict(value=100.0, ci=[100.0, 100.0]) and baseline['beat_chance']
    reference = baseline['references']['all_b']
    assert reference['arch'] == ALL_B and reference['percentile'] == percentile_among(
        reference['standalone_score'], [row['standalone_score'] for row in baseline['random']])
    assert report['candidates'] == [] and report['settings']['num_candidates'] == 0
    assert "Reference 'all_b'" in report['verdict']


@pytest.mark.parametrize('options, message', [
    ({}, 'a differentiable search ends with one architecture .* --random N'),
    ({'diagnose.num_random': 2}, '--random must be >= 3'),
    ({'diagnose.num_random': 5, 'diagnose.random_architectures': None},
     'names where random architectures come from: diagnose.random_architectures'),
])
def test_differentiable_bad_input_is_one_line(tmp_path, options, message):
    from nas_tasks.diagnostics.diagnosis import run_diagnosis
    config = differentiable_config(tmp_path / 'differentiable.py')
    write_best_arch(tmp_path / 'search', {name: 'a' for name in TOY_CHOICES})
    with pytest.raises(NasError, match=message) as error:
        run_diagnosis(config, str(tmp_path / 'search'), options, 'none')
    assert '\n' not in str(error.value)


def test_random_without_a_finished_search_is_one_line(tmp_path):
    config = sample_based_config(tmp_path / 'toy.py', num_candidates=0)
    (tmp_path / 'search').mkdir()
    with pytest.raises(NasError, match='best_arch.json not found: .* diagnose a finished search'):
        diagnose(config, tmp_path / 'search', 4)
    with pytest.raises(NasError, match='nothing to diagnose: .* --random N'):
        diagnose(config, tmp_path / 'search', 0)


@pytest.mark.slow
def test_a_killed_random_baseline_resumes_on_two_ranks_without_training_again(toy_search):
    """Slow: kill and resume, torchrun with 2 ranks. The stand-in recipe ends its process
    hard after 3 trainings (as a SIGKILL); the rerun, under torchrun, trains only the
    architectures without a record, split over both ranks, and reports the same draws."""
    config, work_dir = toy_search
    arguments = ['tools/diagnose.py', config, str(work_dir), '--random', '6',
                 '--cfg-options', 'diagnose.num_candidates=0']
    env = dict(ONE_THREAD, PYTHONPATH=str(REPO / 'tests'))
    killed = run_tool([sys.executable, *arguments], env_extra=dict(env, **{KILL_AFTER: '3'}))
    assert killed.returncode == 9, killed.stderr[-2000:]
    records = work_dir / 'diagnostics' / 'standalone'
    first = {path.name: path.read_text() for path in records.glob('*.json')}
    assert len(first) == 3 and not (work_dir / 'diagnostics' / 'report.json').exists()
    resumed = run_tool([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
                        '--master_port', free_port(), *arguments, '--launcher', 'pytorch'],
                       env_extra=env, check=True)
    assert re.search(r'percentile=\d+\.\d% \[\d+\.\d%, \d+\.\d%\] minus_median=', resumed.stdout)
    assert {name: (records / name).read_text() for name in first} == first, 'not trained again'
    after = {path.name: json.loads(path.read_text()) for path in records.glob('*.json')}
    assert len(after) == 7  # the pick and 6 random ones
    assert {record['rank'] for name, record in after.items() if name not in first} == {0, 1}
    assert 'standalone training: 3 of 7 already done, 4 to do on 2 process(es)' in (
        work_dir / 'diagnostics' / 'diagnose.log').read_text()
    # The same draws as one process makes (seeded by the diagnosis seed alone).
    report = json.loads((work_dir / 'diagnostics' / 'report.json').read_text())
    alone = diagnose(config, work_dir, 6, **{'diagnose.num_candidates': 0})
    assert report['random_baseline'] == alone['random_baseline']


# -- DetNAS toy, end to end ------------------------------------------------------------
@pytest.mark.slow
def test_detnas_toy_pick_against_random_architectures(detnas_search, tmp_path):
    """Slow: 4 standalone detector trainings. tools/diagnose.py --random on the session's
    DetNAS toy search (the shrunk trainings of test_diagnostics), the ranking skipped."""
    from test_diagnostics import diagnose_command
    from nas_tasks.builder import build_component, load_config
    from nas_tasks.modules import register_all_modules
    from nas_tasks.registry import COST_MODELS
    work_dir = detnas_search.copy_to(tmp_path / 'search')
    command = [*diagnose_command(work_dir, detnas_search.options), 'diagnose.num_candidates=0',
               '--random', '3']
    result = run_tool(['python', *command], env_extra=ONE_THREAD, check=True)
    assert re.search(r'pick bbox_mAP_precise=\d\.\d{4} percentile=\d+\.\d% \[\d+\.\d%, \d+\.\d%\] '
                     r'minus_median=[+-]\d\.\d{3} \[[+-]\d\.\d{3}, [+-]\d\.\d{3}\]', result.stdout), result.stdout
    assert re.search(r'beat chance: (yes|no)', result.stdout)
    report = json.loads((work_dir / 'diagnostics' / 'report.json').read_text())
    baseline = report['random_baseline']
    assert baseline['pick']['arch'] == json.loads((work_dir / 'best_arch.json').read_text())['arch']
    scores = [row['standalone_score'] for row in baseline['random']]
    assert baseline['scored'] == 3 and len(set(scores + [baseline['pick']['standalone_score']])) == 4
    assert baseline['percentile']['value'] == percentile_among(baseline['pick']['standalone_score'], scores)
    # Drawn under the search's FLOPs limit, with its cost table.
    register_all_modules()
    cfg = load_config(str(REPO / TOY_CONFIG))
    costs = build_component(COST_MODELS, cfg.estimator.cost_model, 'cost_model').costs
    limit = cfg.search.constraints.flops.max
    assert all(costs(row['arch'])['flops'] <= limit for row in baseline['random'])
    assert report['candidates'] == [] and is_png(work_dir / 'diagnostics' / 'random_baseline.png')
    assert report['verdict'] in (work_dir / 'diagnostics' / 'diagnose.log').read_text()
