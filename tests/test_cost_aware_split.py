"""A round's candidates dealt to the ranks longest first (Estimator.evaluation_cost),
with no communication: every rank computes the same shares."""
import json
import random
import sys

import pytest

from conftest import REPO, free_port, run_tool
from nas_tasks.dist import longest_first_shares
from stand_in_estimators import SEED, STRATEGY, TOY_CHOICES, CostedEstimator


def loads(shares, costs):
    return [sum(costs[i] for i in share) for share in shares]


def test_longest_first_balances_what_round_robin_does_not():
    costs = [8, 1, 8, 1, 1, 1]
    round_robin = [[0, 2, 4], [1, 3, 5]]
    assert loads(round_robin, costs) == [17, 3]
    shares = longest_first_shares(costs, 2)
    assert shares == [[0, 1, 4], [2, 3, 5]]
    assert loads(shares, costs) == [10, 10]


@pytest.mark.parametrize('world', [1, 2, 3, 5])
def test_every_candidate_goes_to_exactly_one_rank(world):
    generator = random.Random(world)
    costs = [generator.choice([1.0, 2.0, 7.5, 30.0]) for _ in range(11)]
    shares = longest_first_shares(costs, world)
    assert len(shares) == world
    assert sorted(i for share in shares for i in share) == list(range(11))
    assert all(share == sorted(share) for share in shares)
    # No rank could give its last-dealt candidate to another and end sooner than the longest.
    assert max(loads(shares, costs)) - min(loads(shares, costs)) <= max(costs)


def costed_config(path, work_dir):
    path.write_text(
        "custom_imports = dict(imports=['stand_in_estimators'], allow_failed_imports=False)\n"
        f"search_space = dict(type='CategoricalSpace', name='toy', choices={TOY_CHOICES!r})\n"
        f"strategy = dict(type='Evolution', **{STRATEGY!r})\n"
        f"estimator = dict(type='CostedEstimator', work_dir={str(work_dir)!r})\n"
        f"search = dict(seed={SEED})\n")
    return str(path)


@pytest.mark.slow
def test_two_ranks_evaluate_their_longest_first_shares_and_search_like_one_process(tmp_path):
    """Slow: torchrun with 2 workers."""
    env = {'PYTHONPATH': str(REPO / 'tests'), 'OMP_NUM_THREADS': '1'}
    two, one = tmp_path / 'two', tmp_path / 'one'
    run_tool([sys.executable, '-m', 'torch.distributed.run', '--nproc-per-node', '2',
              '--master-port', free_port(), 'tools/search.py', costed_config(tmp_path / 'two.py', two),
              '--launcher', 'pytorch', '--work-dir', str(two)], env_extra=env, timeout=300, check=True)
    run_tool(['python', 'tools/search.py', costed_config(tmp_path / 'one.py', one),
              '--work-dir', str(one)], env_extra=env, timeout=300, check=True)
    records = [json.loads(line) for line in (two / 'candidates.jsonl').read_text().splitlines()]
    assert records == [json.loads(line) for line in (one / 'candidates.jsonl').read_text().splitlines()]
    estimator = CostedEstimator(work_dir=two)
    for round_index in range(4):
        # Every candidate of this search is new when proposed, so the round's records
        # are what was dealt, in order.
        archs = [r['arch'] for r in records if r['round'] == round_index]
        costs = [estimator.evaluation_cost(arch) for arch in archs]
        assert len(set(costs)) > 1, 'the costs must differ for the split to show anything'
        for rank, share in enumerate(longest_first_shares(costs, 2)):
            evaluated = [json.loads(line) for line in
                         (two / 'evaluations' / f'restart0_rank{rank}.jsonl').read_text().splitlines()]
            assert [e['arch'] for e in evaluated if e['round'] == round_index] == \
                [archs[i] for i in share]
