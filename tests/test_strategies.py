import random

import pytest
import torch

from nas_tasks.constraints import ResourceConstraint
from nas_tasks.errors import NasError
from nas_tasks.registry import STRATEGIES
from nas_tasks.result import Result
from nas_tasks.space import CategoricalSpace
from nas_tasks.strategies import AgingEvolution, Evolution, RandomSearch

OPS = ['a', 'b', 'c', 'd']
TARGET = 'c'


def make_space(num_keys=8):
    return CategoricalSpace({f'k{i}': list(OPS) for i in range(num_keys)}, name='toy')


def score(arch):
    """Synthetic objective: how many decisions pick the target option."""
    return float(sum(v == TARGET for v in arch.values()))


def cost(arch):
    """Synthetic cost: the option index summed over decisions (0 .. 3 * keys)."""
    return {'flops': float(sum(OPS.index(v) for v in arch.values()))}


FACTORIES = {
    'random': lambda space, **kw: RandomSearch(space, num_candidates=60, **kw),
    'evolution': lambda space, **kw: Evolution(space, population_size=12, max_generations=5, top_k=4,
                                               num_mutation=4, num_crossover=4, **kw),
    'aging': lambda space, **kw: AgingEvolution(space, population_size=10, sample_size=3,
                                                num_candidates=60, **kw),
}


def run_round(strategy, n=7):
    archs = strategy.ask(n)
    strategy.tell(archs, [Result(score(a)) for a in archs])
    return archs


def run_to_end(strategy, n=7):
    proposed = []
    while not strategy.done:
        archs = run_round(strategy, n)
        assert archs, 'a strategy that is not done must propose something'
        proposed += archs
    assert strategy.ask(n) == []
    return proposed


@pytest.mark.parametrize('kind', FACTORIES)
def test_never_repeats_and_proposes_the_budget(kind):
    space = make_space(num_keys=4)  # 256 archs, so duplicates would be drawn often
    strategy = FACTORIES[kind](space, seed=1)
    proposed = run_to_end(strategy)
    assert len(proposed) == 60
    assert len({space.canonical(a) for a in proposed}) == 60
    for arch in proposed:
        space.validate(arch)


def test_random_search_stops_when_space_is_exhausted():
    space = CategoricalSpace({'a': [1, 2, 3], 'b': ['x', 'y']}, name='tiny')
    strategy = RandomSearch(space, num_candidates=100, seed=0)
    proposed = run_to_end(strategy)
    assert sorted(space.canonical(a) for a in proposed) == sorted(
        space.canonical({'a': a, 'b': b}) for a in [1, 2, 3] for b in ['x', 'y'])


def test_same_seed_same_proposals_other_seed_different():
    space = make_space()
    runs = [run_to_end(FACTORIES['aging'](space, seed=s)) for s in (3, 3, 4)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_evolution_improves_on_synthetic_objective():
    space = make_space()  # 4**8 = 65536 archs, a single optimum
    strategy = Evolution(space, population_size=20, max_generations=10, top_k=5,
                         num_mutation=8, num_crossover=8, mutation_prob=0.2, seed=0)
    generations = []
    while not strategy.done:
        generations.append(run_round(strategy))
        assert len(generations[-1]) == 20
    gen0_best = max(map(score, generations[0]))
    assert len(generations) == 10
    assert strategy.top[0][1] == 8.0 > gen0_best
    mean = lambda g: sum(map(score, g)) / len(g)
    assert mean(generations[-1]) > mean(generations[0]) + 1
    # Random search with the same budget does far worse.
    baseline = run_to_end(RandomSearch(space, num_candidates=200, seed=0))
    assert max(map(score, baseline)) < 8


def _hamming(a, b):
    return sum(a[k] != b[k] for k in a)


def test_evolution_children_come_from_top_k():
    space = make_space()
    mutants = Evolution(space, population_size=10, max_generations=2, top_k=3,
                        num_mutation=10, num_crossover=0, mutation_prob=0.1, seed=0)
    crosses = Evolution(space, population_size=10, max_generations=2, top_k=3,
                        num_mutation=0, num_crossover=10, seed=0)
    parents, children = {}, {}
    for strategy in (mutants, crosses):
        gen0 = run_round(strategy)
        parents[strategy] = [a for a, _ in strategy.top]
        assert parents[strategy] == sorted(gen0, key=lambda a: -score(a))[:3]  # stable: ties by order
        children[strategy] = strategy.ask(0)
    # Random archs are within distance 2 of one of 3 parents with chance < 2%.
    assert all(min(_hamming(c, p) for p in parents[mutants]) <= 2 for c in children[mutants])
    # Every crossover child is built key by key from one pair of parents.
    for child in children[crosses]:
        assert any(all(child[k] in (p[k], q[k]) for k in child)
                   for p in parents[crosses] for q in parents[crosses] if p is not q)


def test_evolution_top_k_spans_generations_with_ties_by_order():
    space = make_space()
    strategy = Evolution(space, population_size=10, max_generations=3, top_k=4,
                         num_mutation=3, num_crossover=3, seed=2)
    told = []
    while not strategy.done:
        archs = strategy.ask(0)
        coarse = [Result(float(score(a) >= 2)) for a in archs]  # many ties
        strategy.tell(archs, coarse)
        told += [(a, r.score) for a, r in zip(archs, coarse)]
    expected = sorted(told, key=lambda t: -t[1])[:4]  # stable: earlier first among equals
    assert strategy.top == expected


def test_evolution_ask_repeats_untold_members_of_generation():
    strategy = Evolution(make_space(), population_size=6, max_generations=2, top_k=2,
                         num_mutation=2, num_crossover=2, seed=0)
    gen = strategy.ask(3)
    assert len(gen) == 6 and strategy.ask(3) == gen
    strategy.tell(gen[:4], [Result(score(a)) for a in gen[:4]])
    assert strategy.ask(3) == gen[4:] and strategy.generation == 0
    strategy.tell(gen[4:], [Result(score(a)) for a in gen[4:]])
    assert strategy.generation == 1
    with pytest.raises(ValueError, match='not in the current generation'):
        strategy.tell(gen[:1], [Result(0.0)])


def test_aging_evolution_improves_and_population_is_bounded():
    space = make_space()
    strategy = AgingEvolution(space, population_size=20, sample_size=5, num_candidates=300, seed=0)
    scores = []
    while not strategy.done:
        [arch] = strategy.ask(1)
        if len(scores) >= 20:
            # mutation_prob=None: the child is one decision away from a member.
            assert min(_hamming(arch, member) for member, _ in strategy.population) == 1
        scores.append(score(arch))
        strategy.tell([arch], [Result(scores[-1])])
        assert len(strategy.population) == min(len(scores), 20)
        assert strategy.population == strategy.history[-20:]  # the oldest die first
    assert len(strategy.history) == 300
    assert max(scores) == 8.0 > max(scores[:20])
    assert sum(scores[-50:]) / 50 > sum(scores[:20]) / 20 + 2


def test_aging_evolution_tournament_picks_best_of_sample():
    space = make_space()
    strategy = AgingEvolution(space, population_size=5, sample_size=5, num_candidates=200,
                              mutation_prob=None, seed=0)
    first = strategy.ask(5)
    # One member far better than the rest: with 5 draws out of 5 it wins in most tournaments.
    best = first[2]
    strategy.tell(first, [Result(100.0 if a is best else 0.0) for a in first])
    children = strategy.ask(20)
    near_best = sum(_hamming(c, best) == 1 for c in children)
    assert near_best >= 0.6 * 20  # 1 - (4/5)**5 = 67% of tournaments contain it


@pytest.mark.parametrize('kind', FACTORIES)
def test_constraint_respected(kind):
    space = make_space()
    constraint = ResourceConstraint(cost, {'flops': {'min': 6, 'max': 10}})
    rng = random.Random(0)
    assert sum(constraint(space.sample(rng)) for _ in range(1000)) < 700  # it does reject
    proposed = run_to_end(FACTORIES[kind](space, seed=0, constraint=constraint))
    assert proposed and all(6 <= cost(a)['flops'] <= 10 for a in proposed)


@pytest.mark.parametrize('kind', FACTORIES)
def test_impossible_constraint_raises(kind):
    constraint = ResourceConstraint(cost, {'flops': {'max': -1}})
    strategy = FACTORIES[kind](make_space(), seed=0, constraint=constraint, max_sample_tries=50)
    with pytest.raises(NasError, match='could not sample an architecture within the constraints after 50 '
                                       'tries .*loosen the limits \\(flops in \\[-inf, -1\\]\\)'):
        strategy.ask(5)


def _save_load(state, path):
    torch.save(state, path)
    return torch.load(path, weights_only=True)


@pytest.mark.parametrize('kind', FACTORIES)
def test_state_dict_round_trip_resumes_exactly(kind, tmp_path):
    space = make_space()
    constraint = ResourceConstraint(cost, {'flops': {'max': 14}})
    uninterrupted = FACTORIES[kind](space, seed=5, constraint=constraint)
    expected = [run_round(uninterrupted) for _ in range(6)]

    first = FACTORIES[kind](space, seed=5, constraint=constraint)
    resumed_rounds = [run_round(first) for _ in range(3)]
    state = _save_load(first.state_dict(), tmp_path / 'state.pth')
    del first
    resumed = FACTORIES[kind](space, seed=999, constraint=constraint)  # seed comes from the state
    resumed.load_state_dict(state)
    resumed_rounds += [run_round(resumed) for _ in range(3)]
    assert resumed_rounds == expected
    assert resumed.state_dict() == uninterrupted.state_dict()


def test_state_dict_round_trip_between_ask_and_tell(tmp_path):
    space = make_space()
    a = FACTORIES['evolution'](space, seed=1)
    run_round(a)
    gen1 = a.ask(0)
    b = FACTORIES['evolution'](space, seed=1)
    b.load_state_dict(_save_load(a.state_dict(), tmp_path / 'state.pth'))
    assert b.ask(0) == gen1
    for s in (a, b):
        s.tell(gen1, [Result(score(x)) for x in gen1])
    assert a.ask(0) == b.ask(0)


def test_restored_aging_evolution_still_rejects_repeated_tells(tmp_path):
    space = make_space()
    a = FACTORIES['aging'](space, seed=0)
    told = run_round(a)
    b = FACTORIES['aging'](space, seed=0)
    b.load_state_dict(_save_load(a.state_dict(), tmp_path / 'state.pth'))
    with pytest.raises(ValueError, match='told already'):
        b.tell(told[:1], [Result(1.0)])


def test_load_state_dict_rejects_other_strategy_or_space():
    space = make_space()
    state = FACTORIES['random'](space).state_dict()
    with pytest.raises(NasError, match="strategy RandomSearch on space 'toy' v1, but this search uses "
                                       "AgingEvolution"):
        FACTORIES['aging'](space).load_state_dict(state)
    other = CategoricalSpace({'k0': OPS}, name='other')
    with pytest.raises(NasError, match="space 'other' v1"):
        FACTORIES['random'](other).load_state_dict(state)


def test_tell_checks_its_input():
    strategy = FACTORIES['aging'](make_space(), seed=0)
    archs = strategy.ask(2)
    with pytest.raises(ValueError, match='2 architectures but 1 results'):
        strategy.tell(archs, [Result(1.0)])
    stranger = next(a for a in ({f'k{i}': op for i in range(8)} for op in OPS) if a not in archs)
    with pytest.raises(ValueError, match='never proposed'):
        strategy.tell([stranger], [Result(1.0)])
    strategy.tell(archs[:1], [Result(1.0)])
    with pytest.raises(ValueError, match='told already'):
        strategy.tell(archs[:1], [Result(1.0)])


def test_nan_scores_rank_last():
    strategy = Evolution(make_space(), population_size=4, max_generations=2, top_k=2,
                         num_mutation=1, num_crossover=1, seed=0)
    archs = strategy.ask(0)
    strategy.tell(archs, [Result(s) for s in (float('nan'), 1.0, float('nan'), 3.0)])
    assert [s for _, s in strategy.top] == [3.0, 1.0]


def test_built_from_registry_with_validated_params():
    space = make_space()
    strategy = STRATEGIES.build(dict(type='Evolution', space=space, population_size=8, top_k=3,
                                     num_mutation=3, num_crossover=3, max_generations=2))
    assert isinstance(strategy, Evolution) and len(strategy.ask(0)) == 8
    random_search = STRATEGIES.build(dict(type='RandomSearch', space=space, num_candidates=3))
    assert isinstance(random_search, RandomSearch)
    assert isinstance(STRATEGIES.build(dict(type='AgingEvolution', space=space)), AgingEvolution)
    with pytest.raises(NasError, match='must not exceed population_size'):
        Evolution(space, population_size=10, num_mutation=6, num_crossover=6)
    with pytest.raises(NasError, match='sample_size \\(11\\) must not exceed population_size \\(10\\)'):
        AgingEvolution(space, population_size=10, sample_size=11)
    with pytest.raises(NasError, match='mutation_prob must be a number in \\[0, 1\\]'):
        AgingEvolution(space, mutation_prob=2)
    with pytest.raises(NasError, match='num_candidates must be an int >= 1'):
        RandomSearch(space, num_candidates=0)


def test_resource_constraint_limits():
    calls = []

    def counting_cost(arch):
        calls.append(arch)
        return {'flops': 2e8, 'params': 6e6}

    assert ResourceConstraint(counting_cost, None)({}) and ResourceConstraint(counting_cost, {})({})
    assert calls == []  # no limits: the cost function is never run
    assert ResourceConstraint(counting_cost, {'flops': {'min': 1e8, 'max': 2e8}})({})  # inclusive
    assert not ResourceConstraint(counting_cost, {'flops': {'min': 2.5e8}})({})
    both = ResourceConstraint(counting_cost, {'flops': {'max': 3e8}, 'params': {'max': 5e6}})
    assert not both({}) and both.violations({}) == ['params 6e+06 > max 5e+06']
    with pytest.raises(NasError, match="unknown field\\(s\\) 'maximum'; only 'min' and 'max'"):
        ResourceConstraint(counting_cost, {'flops': {'maximum': 3e8}})
    with pytest.raises(NasError, match="min 3e\\+08 above max 1e\\+08"):
        ResourceConstraint(counting_cost, {'flops': {'min': 3e8, 'max': 1e8}})
    with pytest.raises(NasError, match="must be a number"):
        ResourceConstraint(counting_cost, {'flops': {'max': '3e8'}})
    with pytest.raises(NasError, match="'latency', but the cost function gives only: flops, params"):
        ResourceConstraint(counting_cost, {'latency': {'max': 1}})({})
