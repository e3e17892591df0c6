"""Latency as a measured constraint: tables measured on this machine, reused on the
same setup and measured again on another, their estimate error, whole-network
latency models, and a toy DetNAS search that never proposes a candidate over its
latency limit."""
import json
import logging
import math
import random
import statistics

import pytest
from mmengine.logging import MMLogger

from conftest import ONE_THREAD, TOY_CONFIG, one_torch_thread, read_candidates, run_tool, shrunk_search_options
from nas_tasks.constraints import ResourceConstraint, combined_costs
from nas_tasks.errors import NasError
from nas_tasks.modules import register_all_modules

# Small and quick: the values are timings of this machine, only their bookkeeping is checked.
QUICK = dict(repeats=2, warmup=1, check_networks=2)


@pytest.fixture(scope='module', autouse=True)
def registered():
    register_all_modules()


@pytest.fixture
def log_lines():
    """The lines the latency models log (on mmengine's current logger)."""
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


def detnas_table(path, input_size=(64, 64), **settings):
    from backbones.detnas_presets import DetNASSpace
    from detection.detnas.latency import DetNASLatencyTable
    return DetNASLatencyTable(DetNASSpace('small'), input_size, table=str(path), **settings)


def test_table_estimate_error_is_saved_and_the_table_reused_only_on_the_same_setup(tmp_path, log_lines):
    path = tmp_path / 'detnas.json'
    with one_torch_thread():
        first = detnas_table(path, **QUICK)
    assert not first.reused
    document = json.loads(path.read_text())
    setup = dict(document['setup'])
    assert setup['threads'] == 1 and setup['batch'] == 1 and setup['input_size'] == [64, 64]
    assert setup['device'].startswith('cpu: ') and setup['network'] == 'detnas-small-backbone'
    assert len(document['entries']) == 1 + 20 * 4 and all(v > 0 for v in document['entries'].values())
    # The sums against whole networks timed end to end: saved with the table, and logged.
    error = document['estimate_error']
    assert len(error['networks']) == 2 and error == first.estimate_error
    for check in error['networks']:
        assert check['estimated_ms'] == pytest.approx(first.estimate(check['arch']))
        assert check['measured_ms'] > 0
        assert check['error_pct'] == pytest.approx(
            100 * (check['estimated_ms'] - check['measured_ms']) / check['measured_ms'])
    assert error['worst_pct'] == max(abs(c['error_pct']) for c in error['networks']) >= error['mean_pct']
    assert any('measured' in line and f"mean error {error['mean_pct']:.1f}%" in line
               and f"worst {error['worst_pct']:.1f}%" in line for line in log_lines)

    # The same setup: the table is read back, not measured.
    with one_torch_thread():
        again = detnas_table(path, **QUICK)
    assert again.reused and again.entries == first.entries
    assert json.loads(path.read_text()) == document

    # Another setup (here: another torch version on 4 threads wrote it): measured
    # again, and one line says why.
    document['setup'].update(torch='0.1.0', threads=4)
    path.write_text(json.dumps(document))
    log_lines.clear()
    with one_torch_thread():
        other = detnas_table(path, **QUICK)
    assert not other.reused
    assert [line for line in log_lines if 'measuring it again' in line] == [
        f"latency table {path} was measured on another setup (torch '0.1.0' there, "
        f"'{setup['torch']}' here; threads 4 there, 1 here): measuring it again"]
    assert json.loads(path.read_text())['setup'] == setup  # replaced by this setup's table


def test_a_broken_table_file_is_one_clear_error(tmp_path):
    path = tmp_path / 'broken.json'
    path.write_text('{"setup": ')
    with pytest.raises(NasError, match='cannot read latency table .*delete it to measure it again'):
        detnas_table(path, **QUICK)


def test_the_thread_clock_times_one_cpu_thread_only(tmp_path):
    import torch
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with pytest.raises(NasError, match="clock='thread' times one CPU thread, but this runs on cpu "
                                           'with 2 torch threads'):
            detnas_table(tmp_path / 'thread.json', clock='thread', **QUICK)
    finally:
        torch.set_num_threads(threads)
    with one_torch_thread():
        table = detnas_table(tmp_path / 'thread.json', clock='thread', **QUICK)
    assert table.setup['clock'] == 'thread' and all(v > 0 for v in table.entries.values())
    # By CPU time on one thread (other jobs on the cores do not count), the sums of the
    # interleaved parts stay near whole backbones (docs/latency.md: 8-14%); loosely bounded.
    error = table.estimate_error
    assert len(error['networks']) == QUICK['check_networks']
    assert error['mean_pct'] <= error['worst_pct'] < 50, error


def test_nas_fpn_whole_network_latency_is_measured_once_per_arch_and_kept(tmp_path):
    from detection.nas_fpn.latency import NASFPNLatency
    from detection.nas_fpn.space import NASFPNSpace
    from nas_tasks.builder import load_config

    cfg = load_config('configs/nas_fpn/nas_fpn_retinanet_toy.py')
    space = NASFPNSpace()
    path = tmp_path / 'nas_fpn.json'
    settings = dict(table=str(path), repeats=2, warmup=1)
    with one_torch_thread():
        model = NASFPNLatency(space, cfg, (100, 100), **settings)
        assert model.setup['input_size'] == [128, 128]  # padded as mmdet pads (pad_size_divisor)
        timed = []
        whole_network = model.whole_network
        model.whole_network = lambda arch: timed.append(arch) or whole_network(arch)
        rng = random.Random(0)
        arch = next(a for a in iter(lambda: space.sample(rng), None) if space.is_valid(a))
        latency = model.costs(arch)['latency']
        assert latency > 0 and model.costs(arch) == {'latency': latency}
        assert len(timed) == 1  # the second call was answered from the table
        assert json.loads(path.read_text())['entries'] == {space.canonical(arch): latency}
        # A later search with the same setup reads it back.
        later = NASFPNLatency(space, cfg, (128, 128), **settings)
        assert later.reused and later.costs(arch) == {'latency': latency}


def test_autogan_latency_times_prefixes_and_whole_generators(tmp_path):
    from gan.autogan.latency import AutoGANLatency
    from gan.autogan.space import PRESETS, AutoGANSpace

    space = AutoGANSpace()
    with one_torch_thread():
        model = AutoGANLatency(space, gf_dim=8, table=str(tmp_path / 'gan.json'), repeats=2, warmup=1)
    whole = dict(PRESETS['autogan_cifar10_a'])
    prefix = space.prefix(whole, 0)
    with one_torch_thread():
        costs = [model.costs(whole)['latency'], model.costs(prefix)['latency']]
    assert all(value > 0 for value in costs)
    assert set(json.loads((tmp_path / 'gan.json').read_text())['entries']) == {
        space.canonical(whole), space.canonical(prefix)}
    assert model.setup['input_size'] == [128]


def test_a_latency_limit_without_a_latency_model_says_where_to_get_one():
    constraint = ResourceConstraint(lambda arch: {'flops': 1.0}, {'latency': {'max': 5.0}})
    with pytest.raises(NasError, match="limits name 'latency'.*search.cost_models"):
        constraint({})
    with pytest.raises(NasError, match="two cost functions give 'flops'"):
        combined_costs(lambda arch: {'flops': 1.0}, lambda arch: {'flops': 2.0})({})


@pytest.mark.slow  # a whole DetNAS search beside the session's
def test_toy_detnas_search_never_proposes_a_candidate_over_the_latency_limit(toy_coco, tmp_path):
    """The search reuses a table measured here (same setup: one thread), and its
    limit bites: the first population it would propose without it is half over."""
    from backbones.detnas_presets import DetNASSpace
    from backbones.resources import DetNASCostTable
    from nas_tasks.strategies.evolution import Evolution

    table_path = tmp_path / 'detnas_128.json'
    with one_torch_thread():
        table = detnas_table(table_path, input_size=(128, 128))
    space = DetNASSpace('small')
    # What the search's first generation would be without the latency limit (the
    # toy config's FLOPs limit stays), and a limit that half of it breaks.
    flops_only = ResourceConstraint(DetNASCostTable('small').costs, {'flops': {'max': 300e6}})
    unlimited = Evolution(space, population_size=4, max_generations=1, top_k=2, num_mutation=1,
                          num_crossover=1, seed=0,
                          constraint=flops_only).ask(4)
    latencies = sorted(table.estimate(arch) for arch in unlimited)
    assert latencies[1] < latencies[2], 'no limit between the 2nd and 3rd latency; sample again'
    limit = statistics.fmean(latencies[1:3])
    over = [space.canonical(arch) for arch in unlimited if table.estimate(arch) > limit]
    assert len(over) == 2

    work_dir = tmp_path / 'search'
    latency = 'search.cost_models.latency'
    result = run_tool(['python', 'tools/search.py', TOY_CONFIG, '--work-dir', str(work_dir),
                       '--cfg-options', *shrunk_search_options(toy_coco, supernet_iters=2),
                       'strategy.max_generations=1',  # one population of 4 is enough here
                       f'{latency}.type=DetNASLatencyTable', f'{latency}.input_size=(128,128)',
                       f'{latency}.table={table_path}', f'search.constraints.latency.max={limit!r}'],
                      env_extra=ONE_THREAD, check=True)
    output = result.stdout + result.stderr
    assert f'latency table {table_path} (reused' in output and 'mean error' in output
    candidates = read_candidates(work_dir)
    assert len(candidates) == 4 and all(c['status'] == 'ok' for c in candidates)
    for candidate in candidates:
        costs = candidate['costs']
        assert costs['latency'] == pytest.approx(table.estimate(candidate['arch']), rel=1e-12)
        assert costs['latency'] <= limit and costs['flops'] <= 300e6
    assert not {space.canonical(c['arch']) for c in candidates} & set(over)
    best = json.loads((work_dir / 'best_arch.json').read_text())
    assert best['metrics']['latency'] <= limit and math.isfinite(best['metrics']['latency'])
