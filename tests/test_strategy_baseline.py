"""tools/diagnose.py --strategy-baseline S: the search's strategy and RandomSearch rerun over
S seeds under the search's estimator (its shared weights loaded, not trained again), with
as many evaluations, on stand-in estimators (no training: seconds)."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from nas_tasks.diagnostics.statistics import bootstrap_indices, mean_difference
from nas_tasks.errors import NasError
from stand_in_estimators import SEED, STRATEGY, TOY_CHOICES

sys.path.insert(0, str(REPO / 'tests'))  # custom_imports of the configs below

SEEDS = 3


def config(path: Path, estimator: str) -> str:
    path.write_text(
        "custom_imports = dict(imports=['stand_in_estimators', 'stand_in_recipes'], "
        "allow_failed_imports=False)\n"
        f"search_space = dict(type='CategoricalSpace', name='toy', choices={TOY_CHOICES!r})\n"
        f"strategy = dict(type='Evolution', **{STRATEGY!r})\n"
        f"estimator = dict(type={estimator!r})\n"
        f"search = dict(seed={SEED})\n"
        "diagnose = dict(num_candidates=0, standalone=dict(type='CountingRecipe'), "
        "bootstrap_samples=500)\n")
    return str(path)


def search(tmp_path, estimator='OneShotStandIn'):
    from nas_tasks.search import run_search
    path = config(tmp_path / 'toy.py', estimator)
    run_search(path, str(tmp_path / 'search'), False, {}, 'none')
    return path, tmp_path / 'search'


def diagnose(config_path, work_dir, seeds=SEEDS):
    from nas_tasks.diagnostics.diagnosis import run_diagnosis
    return run_diagnosis(config_path, str(work_dir), {'diagnose.strategy_baseline': seeds}, 'none')


def records(work_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (work_dir / 'candidates.jsonl').read_text().splitlines()]


def test_mean_difference_on_hand_made_numbers():
    indices = bootstrap_indices(3, 500, 0)
    same = mean_difference([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], indices)
    assert same == dict(value=0.0, ci=[0.0, 0.0])
    ahead = mean_difference([2.0, 3.0, 5.0], [1.0, 2.0, 3.0], indices)
    assert ahead['value'] == pytest.approx(4 / 3) and ahead['ci'][0] >= 1.0 and ahead['ci'][1] <= 2.0
    assert ahead['ci'][0] < ahead['ci'][1], 'the resampled means vary'


def test_strategy_and_random_search_rerun_under_the_searchs_trained_estimator(tmp_path):
    config_path, work_dir = search(tmp_path)
    evaluations = len({json.dumps(r['arch'], sort_keys=True) for r in records(work_dir)})
    report = diagnose(config_path, work_dir)
    baseline = report['strategy_baseline']
    assert baseline['strategy'] == 'Evolution' and baseline['evaluations'] == evaluations
    out = work_dir / 'diagnostics' / 'strategy_baseline'
    bests = {}
    for side in ('search', 'random'):
        runs = baseline[side]['runs']
        assert [run['seed'] for run in runs] == baseline['seeds'] and len(set(baseline['seeds'])) == SEEDS
        for run in runs:
            scored = records(Path(run['work_dir']))
            assert Path(run['work_dir']).parent == out
            assert run['evaluations'] == evaluations == len({json.dumps(r['arch'], sort_keys=True)
                                                             for r in scored})
            assert run['best_score'] == max(r['score'] for r in scored)
        bests[side] = [run['best_score'] for run in runs]
        assert baseline[side]['mean_best'] == pytest.approx(np.mean(bests[side]))
    assert len(set(bests['search'] + bests['random'])) > 2, 'the reruns differ'
    assert baseline['difference']['value'] == pytest.approx(np.mean(bests['search']) - np.mean(bests['random']))
    # Evolution climbs count_a; random sampling with as many evaluations does not get as high.
    assert baseline['strategy_wins'] == SEEDS and baseline['better_than_random']
    assert 'the strategy finds better architectures than random sampling' in report['verdict']
    # The search's shared weights were loaded once, from its own work dir, never trained again.
    calls = [json.loads(line) for line in (work_dir / 'train_shared.jsonl').read_text().splitlines()]
    assert calls[-1] == dict(resume=True, trained_before=True) and len(calls) == 2  # the search's + this
    assert not list(out.rglob('supernet.txt')) and not list(out.rglob('train_shared.jsonl'))


def test_a_rerun_diagnosis_reads_the_finished_reruns_back(tmp_path):
    config_path, work_dir = search(tmp_path)
    first = diagnose(config_path, work_dir, seeds=2)['strategy_baseline']
    out = work_dir / 'diagnostics' / 'strategy_baseline'
    written = {path: path.read_text() for path in out.rglob('candidates.jsonl')}
    assert len(written) == 4
    again = diagnose(config_path, work_dir, seeds=2)['strategy_baseline']
    assert again == first
    assert {path: path.read_text() for path in out.rglob('candidates.jsonl')} == written
    for log in out.glob('*/search.log'):  # each loop resumed finished: nothing evaluated again
        assert log.read_text().count('search already finished') == 1, log


@pytest.mark.parametrize('estimator, message', [
    ('DriftingSharedEstimator', 'does not apply to DriftingSharedEstimator: it trains its shared '
                                'weights while the search runs'),
])
def test_an_estimator_trained_alongside_the_strategy_is_refused(tmp_path, estimator, message):
    config_path, work_dir = search(tmp_path, estimator)
    with pytest.raises(NasError, match=message) as error:
        diagnose(config_path, work_dir)
    assert '\n' not in str(error.value)


def test_a_differentiable_search_is_refused_in_one_line(tmp_path):
    from nas_tasks.diagnostics.diagnosis import run_diagnosis
    path = tmp_path / 'differentiable.py'
    path.write_text("custom_imports = dict(imports=['stand_in_recipes'], allow_failed_imports=False)\n"
                    "differentiable_search = dict(type='NotBuilt')\n"
                    "diagnose = dict(standalone=dict(type='CountingRecipe'),\n"
                    "                random_architectures=dict(type='ToyArchitectures'))\n")
    (tmp_path / 'search').mkdir()
    with pytest.raises(NasError, match='a differentiable search has none') as error:
        run_diagnosis(str(path), str(tmp_path / 'search'),
                      {'diagnose.strategy_baseline': 2, 'diagnose.num_random': 4}, 'none')
    assert '\n' not in str(error.value)


def test_an_unfinished_search_is_refused_in_one_line(tmp_path):
    config_path, work_dir = search(tmp_path)
    (work_dir / 'best_arch.json').unlink()
    with pytest.raises(NasError, match='best_arch.json not found'):
        diagnose(config_path, work_dir)
