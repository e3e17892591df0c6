"""Estimator diagnostics: rank statistics, candidate selection, and tools/diagnose.py
end to end on a tiny DetNAS toy search (killed, then resumed over 2 torchrun ranks)."""
import json
import math
import random
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from conftest import (ONE_THREAD, REPO, TOY_CONFIG, free_port, is_png, kill_when, read_candidates,
                      run_tool)
from nas_tasks.diagnostics.diagnosis import DiagnoseSettings, run_diagnosis
from nas_tasks.diagnostics.selection import Candidate, read_search_candidates, select_spread
from nas_tasks.diagnostics.statistics import (bootstrap_indices, rank_agreement, tau_difference,
                                              top_k_overlap)
from nas_tasks.diagnostics.verdict import write_verdict
from nas_tasks.errors import NasError

K = 8


def agreement_of(search, standalone, seed=0, samples=1000):
    return rank_agreement(search, standalone, bootstrap_indices(len(search), samples, seed))


# -- statistics on hand-made rankings ----------------------------------------------
def test_a_perfect_ranking_has_tau_and_rho_one_with_a_tight_interval():
    search = [0.1, 0.3, 0.2, 0.8, 0.5, 0.4, 0.7, 0.6]
    standalone = [10 * s + 1 for s in search]  # the same order, other values
    agreement = agreement_of(search, standalone)
    for key in ('kendall_tau', 'spearman_rho'):
        assert agreement[key]['value'] == pytest.approx(1.0)
        assert agreement[key]['ci'] == pytest.approx([1.0, 1.0])
    assert agreement['kendall_tau']['p_value'] < 0.001


def test_a_reversed_ranking_has_tau_and_rho_minus_one():
    search = [0.1, 0.3, 0.2, 0.8, 0.5, 0.4, 0.7, 0.6]
    agreement = agreement_of(search, [-s for s in search])
    for key in ('kendall_tau', 'spearman_rho'):
        assert agreement[key]['value'] == pytest.approx(-1.0)
        assert agreement[key]['ci'] == pytest.approx([-1.0, -1.0])


def test_an_unrelated_ranking_has_an_interval_that_covers_zero():
    # A shuffle of 8 candidates whose tau and rho are exactly 0.
    search = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    standalone = [0, 3, 5, 6, 7, 4, 2, 1]
    agreement = agreement_of(search, standalone)
    for key in ('kendall_tau', 'spearman_rho'):
        assert agreement[key]['value'] == pytest.approx(0.0, abs=1e-12)
        low, high = agreement[key]['ci']
        assert low < -0.3 and high > 0.3, (key, agreement[key])
    assert agreement['kendall_tau']['p_value'] > 0.5


def test_the_bootstrap_is_seeded():
    rng = random.Random(0)
    search, standalone = [rng.random() for _ in range(K)], [rng.random() for _ in range(K)]
    first, again, other = (agreement_of(search, standalone, seed=s) for s in (5, 5, 6))
    assert first['kendall_tau']['ci'] != other['kendall_tau']['ci']
    assert first == again


def test_the_bootstrap_statistics_are_scipys():
    """The per-resample statistics (all resamples at once) equal scipy's, ties and all."""
    from nas_tasks.diagnostics.statistics import kendall_tau_rows, spearman_rho_rows
    rng = random.Random(1)
    search = [round(rng.random(), 1) for _ in range(K)]  # rounded: ties within a side
    standalone = [round(rng.random(), 1) for _ in range(K)]
    indices = bootstrap_indices(K, 200, 0)
    x, y = (np.asarray(values)[indices] for values in (search, standalone))
    taus, rhos = kendall_tau_rows(x, y), spearman_rho_rows(x, y)
    assert len(set(np.round(taus[np.isfinite(taus)], 6))) > 10, 'the resamples differ'
    for row in range(len(indices)):
        if len(set(x[row])) < 2 or len(set(y[row])) < 2:
            assert math.isnan(taus[row]) and math.isnan(rhos[row])
            continue
        assert taus[row] == pytest.approx(stats.kendalltau(x[row], y[row]).statistic)
        assert rhos[row] == pytest.approx(stats.spearmanr(x[row], y[row]).statistic)


def test_all_tied_scores_have_no_correlation():
    agreement = agreement_of([0.1, 0.2, 0.3, 0.4], [0.5] * 4)
    assert math.isnan(agreement['kendall_tau']['value']) and agreement['kendall_tau']['ci'] is None
    assert agreement['kendall_tau']['degenerate'] == 1000


def test_top_k_overlap_against_chance():
    search = [8, 7, 6, 5, 4, 3, 2, 1]
    assert top_k_overlap(search, search, 3) == dict(k=3, overlap=3, fraction=1.0, chance=9 / 8)
    assert top_k_overlap(search, [-s for s in search], 3)['overlap'] == 0
    assert top_k_overlap(search, [8, 7, 1, 2, 3, 4, 5, 6], 3)['overlap'] == 2
    assert top_k_overlap(search[:2], search[:2], 3)['k'] == 2


def test_tau_difference_is_paired():
    search = [0.1, 0.3, 0.2, 0.8, 0.5, 0.4, 0.7, 0.6]
    indices = bootstrap_indices(K, 500, 0)
    same = tau_difference(search, search, search, indices)
    assert same['value'] == 0 and same['ci'] == [0.0, 0.0]
    reversed_other = tau_difference(search, [-s for s in search], search, indices)
    assert reversed_other['value'] == pytest.approx(2.0) and reversed_other['ci'] == pytest.approx([2.0, 2.0])


# -- candidate selection -------------------------------------------------------------
def candidates_with(scores):
    return [Candidate(key=str(i), arch={'i': i}, search_score=s) for i, s in enumerate(scores)]


def test_selection_spreads_over_the_score_range():
    # Most candidates crowd near the bottom: picking by rank would take mostly those.
    scores = [0.01 * i for i in range(30)] + [0.5, 0.7, 0.9, 1.0]
    chosen = select_spread(candidates_with(scores), 5)
    picked = [c.search_score for c in chosen]
    assert picked == sorted(picked, reverse=True), 'best first'
    assert picked[0] == 1.0 and picked[-1] == 0.0
    # Targets 0, .25, .5, .75, 1: each nearest score is taken once.
    assert picked == pytest.approx([1.0, 0.7, 0.5, 0.25, 0.0])


def test_selection_takes_distinct_candidates_and_all_when_few():
    chosen = select_spread(candidates_with([0.5] * 6 + [0.9]), 4)
    assert len({c.key for c in chosen}) == 4 and chosen[0].search_score == 0.9
    assert len(select_spread(candidates_with([0.1, 0.2]), 8)) == 2


def write_candidates(work_dir: Path, lines: list[str]) -> None:
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / 'candidates.jsonl').write_text('\n'.join(lines) + '\n')


def test_search_candidates_leave_out_failures_and_keep_the_latest_score(tmp_path):
    from nas_tasks.space import CategoricalSpace
    space = CategoricalSpace({'a': [0, 1, 2, 3]}, name='test')
    record = lambda a, score, status='ok': json.dumps(dict(arch={'a': a}, score=score, status=status))  # noqa: E731
    write_candidates(tmp_path, [record(0, 0.1), record(1, None, 'failed'), record(2, 0.3),
                                record(0, 0.2), json.dumps(dict(arch={'a': 9}, score=0.5)),
                                '{"arch": {"a": 3}, "sco'])  # cut off: a running search writes it
    found = read_search_candidates(tmp_path, space)
    assert [(c.arch, c.search_score) for c in found] == [({'a': 2}, 0.3), ({'a': 0}, 0.2)]
    assert found[0].id != found[1].id and found[0].id == Candidate(found[0].key, {}, 0).id


def test_candidates_of_another_space_are_refused(tmp_path):
    from nas_tasks.space import CategoricalSpace
    write_candidates(tmp_path, [json.dumps(dict(arch={'b': 1}, score=0.1))])
    with pytest.raises(NasError, match="no architecture of the config's search space 'test'"):
        read_search_candidates(tmp_path, CategoricalSpace({'a': [0, 1]}, name='test'))


# -- verdict -------------------------------------------------------------------------
def report_with(tau, ci, ablations=None):
    entry = dict(value=tau, ci=ci, p_value=0.5, degenerate=0)
    return dict(candidates=[dict(search_score=i, standalone_score=i) for i in range(K)],
                settings=dict(confidence=0.95),
                agreement=dict(kendall_tau=entry, spearman_rho=entry,
                               top_k_overlap=dict(k=3, overlap=1, fraction=1 / 3, chance=1.125),
                               search_best_standalone_rank=4),
                ablations=ablations or {})


def test_the_verdict_reads_the_interval():
    random_like = write_verdict(report_with(0.2, [-0.4, 0.7]))
    assert 'not distinguishable from a random ranking' in random_like and 'K=8' in random_like
    assert 'better than chance' in write_verdict(report_with(0.7, [0.3, 1.0]))
    assert 'opposite' in write_verdict(report_with(-0.7, [-1.0, -0.3]))
    ablation = dict(description='without BN recalibration',
                    agreement=dict(kendall_tau=dict(value=-0.1, ci=[-0.6, 0.4])),
                    tau_change=dict(value=0.8, ci=[0.2, 1.4]))
    text = write_verdict(report_with(0.7, [0.3, 1.0], {'without_bn_recalibration': ablation}))
    assert 'changes τ by +0.80' in text and "the search's own scoring ranks better" in text
    assert '\n' not in text


# -- configs and bad input -------------------------------------------------------------
DIAGNOSED_CONFIGS = ('configs/detnas/detnas_retinanet_toy.py', 'configs/nas_fpn/nas_fpn_retinanet_toy.py')


@pytest.mark.parametrize('config', DIAGNOSED_CONFIGS)
def test_diagnose_sections_of_the_toy_configs_build(config):
    from nas_tasks.builder import build_component, load_config
    from nas_tasks.diagnostics import STANDALONE_RECIPES
    from nas_tasks.modules import register_all_modules
    from nas_tasks.registry import SPACES
    register_all_modules()
    cfg = load_config(str(REPO / config))
    settings = DiagnoseSettings.from_config(cfg)
    assert settings.num_candidates == K and settings.seed == cfg.search.seed + 1
    space = build_component(SPACES, cfg.search_space, 'search_space')
    recipe = build_component(STANDALONE_RECIPES, settings.standalone, 'diagnose.standalone',
                             default_args=dict(config=cfg, space=space, seed=settings.seed))
    # The standalone model trains on the search's training split.
    assert recipe.train_cfg.train_dataloader == cfg.train_dataloader


def test_an_interrupted_training_continues_from_its_last_checkpoint(tmp_path):
    """The candidate's Runner resumes (mmengine's resume) when its folder holds a checkpoint."""
    from nas_tasks.builder import build_component, load_config
    from nas_tasks.diagnostics import STANDALONE_RECIPES
    from nas_tasks.modules import register_all_modules
    from nas_tasks.registry import SPACES
    register_all_modules()
    cfg = load_config(str(REPO / TOY_CONFIG))
    space = build_component(SPACES, cfg.search_space, 'search_space')
    recipe = build_component(STANDALONE_RECIPES, cfg.diagnose.standalone, 'diagnose.standalone',
                             default_args=dict(config=cfg, space=space, seed=1))
    arch = space.sample(random.Random(0))
    fresh = recipe._runner_config(arch, 7, tmp_path)
    assert fresh.resume is False and fresh.work_dir == str(tmp_path)
    assert fresh.model.backbone.arch['arch'] == arch and 'init_cfg' not in fresh.model.backbone
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_100.pth'))
    assert recipe._runner_config(arch, 7, tmp_path).resume is True


@pytest.mark.parametrize('config, options, message', [
    ('configs/auto_deeplab/auto_deeplab_toy.py', {}, 'differentiable search'),
    (TOY_CONFIG, {'diagnose': None}, 'no diagnose=dict'),
    (TOY_CONFIG, {'diagnose.num_candidates': 2}, 'num_candidates must be >= 3'),
    (TOY_CONFIG, {'diagnose.colour': 1}, "diagnose has no setting 'colour'"),
    (TOY_CONFIG, {}, 'candidates.jsonl not found'),
])
def test_bad_input_is_one_line(tmp_path, config, options, message):
    with pytest.raises(NasError, match=message) as error:
        run_diagnosis(str(REPO / config), str(tmp_path), options, 'none')
    assert '\n' not in str(error.value)


def test_a_search_with_too_few_candidates_is_refused(tmp_path):
    arch = {f'layer{i:02d}': 'shuffle3x3' for i in range(20)}
    write_candidates(tmp_path, [json.dumps(dict(arch=arch, score=0.1)),
                                json.dumps(dict(arch=arch, score=None, status='failed'))])
    with pytest.raises(NasError, match='1 successful candidate'):
        run_diagnosis(str(REPO / TOY_CONFIG), str(tmp_path), {}, 'none')


# -- end to end ------------------------------------------------------------------------
NUM_DIAGNOSED = 4


@pytest.fixture
def tiny_search(detnas_search, tmp_path):
    """A copy of the session's DetNAS toy search (the diagnosis writes into it)."""
    return detnas_search.copy_to(tmp_path / 'search'), detnas_search.options


def diagnose_command(work_dir, search_options):
    return ['tools/diagnose.py', TOY_CONFIG, str(work_dir), '--cfg-options', *search_options,
            f'diagnose.num_candidates={NUM_DIAGNOSED}', 'diagnose.bootstrap_samples=500',
            'diagnose.top_k=2', 'diagnose.standalone.cfg_options.train_cfg.max_iters=10',
            'diagnose.standalone.cfg_options.model.test_cfg.score_thr=0.0']


def kill_after_first_record(command, records_dir: Path) -> None:
    kill_when(['python', *command],
              lambda: records_dir.is_dir() and any(records_dir.glob('*.json')),
              env_extra=ONE_THREAD, timeout=300)


@pytest.mark.slow
def test_diagnosis_killed_then_resumed_on_two_ranks(tiny_search):
    """The acceptance run, shrunk: tools/diagnose.py on a DetNAS toy search prints τ and ρ
    with confidence intervals and writes the scatter plot. It is killed after its first
    standalone training and resumed under torchrun with 2 ranks: the finished candidate
    is not trained again, and the others are shared between the ranks."""
    work_dir, search_options = tiny_search
    out = work_dir / 'diagnostics'
    command = diagnose_command(work_dir, search_options)
    kill_after_first_record(command, out / 'standalone')
    finished = {path.name: (path.read_bytes(), path.stat().st_mtime_ns)
                for path in (out / 'standalone').glob('*.json')}
    assert 1 <= len(finished) < NUM_DIAGNOSED and not (out / 'report.json').exists()

    result = run_tool([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
                       '--master_port', free_port(), *command, '--launcher', 'pytorch'],
                      env_extra=ONE_THREAD, check=True)
    interval = r'[+-]\d\.\d{3} \[[+-]\d\.\d{3}, [+-]\d\.\d{3}\]'
    assert re.search(f'kendall_tau={interval} spearman_rho={interval}', result.stdout), result.stdout
    assert re.search(f'without_bn_recalibration: kendall_tau={interval}', result.stdout)
    assert is_png(out / 'scatter.png')

    # Finished candidates were kept, not retrained; the rest were split over both ranks.
    records = {path.name: json.loads(path.read_text()) for path in (out / 'standalone').glob('*.json')}
    assert len(records) == NUM_DIAGNOSED
    for name, (content, mtime) in finished.items():
        assert (out / 'standalone' / name).read_bytes() == content
        assert (out / 'standalone' / name).stat().st_mtime_ns == mtime
    resumed = [r for name, r in records.items() if name not in finished]
    assert {r['rank'] for r in resumed} == {0, 1} and {r['world_size'] for r in resumed} == {2}
    log = (out / 'diagnose.log').read_text()
    assert f'standalone training: {len(finished)} of {NUM_DIAGNOSED} already done' in log
    assert 'verdict: On 4 candidates' in log

    report = json.loads((out / 'report.json').read_text())
    rows = report['candidates']
    searched = {json.dumps(c['arch'], sort_keys=True): c['score'] for c in read_candidates(work_dir)}
    assert [row['search_score'] for row in rows] == [searched[json.dumps(row['arch'], sort_keys=True)]
                                                     for row in rows]
    assert max(searched.values()) == rows[0]['search_score']
    assert min(searched.values()) == rows[-1]['search_score'], 'the selection spans the range'
    standalone = [row['standalone_score'] for row in rows]
    search = [row['search_score'] for row in rows]
    assert len(set(standalone)) == NUM_DIAGNOSED and len(set(search)) == NUM_DIAGNOSED, 'no ties'
    assert standalone == [records[f'{row["id"]}.json']['score'] for row in rows]
    tau = report['agreement']['kendall_tau']
    assert tau['value'] == pytest.approx(stats.kendalltau(search, standalone).statistic)
    assert report['agreement']['spearman_rho']['value'] == pytest.approx(
        stats.spearmanr(search, standalone).statistic)
    low, high = tau['ci']
    assert -1 <= low <= high <= 1
    # The ablation: the same candidates scored by the supernet with its own BN statistics.
    ablation = report['ablations']['without_bn_recalibration']
    other = [row['ablations']['without_bn_recalibration'] for row in rows]
    assert other != search and all(score is not None for score in other)
    assert ablation['tau_change']['value'] == pytest.approx(
        tau['value'] - stats.kendalltau(other, standalone).statistic)
    assert report['verdict'] in log
