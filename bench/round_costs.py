"""Per-round costs of a long search's loop at its start and at its end, before and after.

A stand-in for AutoGAN's search: MultiLevelSearch over AutoGANSpace with the
official config's strategy (stage steps 450/600/900, 10 candidates at each
grow, one architecture per controller step: 1,953 rounds), an estimator that
scores an architecture in no time (a hash of it, so the controller has
something to learn) and holds a constant state of ``--state-mb`` MB, as the
shared GAN does (39 MB: gf 128, df 64 and their Adam states, measured).

Two loops run side by side, round for round, in one process:

* ``before``: the plots redrawn after every round (``plot_interval=1``, no
  wall-time rule), the growing histories (the loop's records, the
  controllers' rewards) pickled object by object in every checkpoint, and
  every record's arch judged whole or not (``strategy.is_final``, which
  validates it) each of the four times a round looks for the best, as
  before this bench's change;
* ``after``: the defaults (``plot_interval=10``, ``plot_seconds=300``), the
  histories stored as JSON-lines text, each entry encoded once, and each
  record judged once (``PerEntryCache``).

Both are timed over ``--window`` rounds at the start (after a first round)
and, having been fast-forwarded to the same state (the after loop runs the
rounds between without plots or checkpoints; the before loop loads its
state), over ``--window`` rounds before the last stage ends. Per round: the
whole round (controller step, evaluation, candidates.jsonl, journal, log),
its plots and its checkpoint, as means over the window (plots every 10th
round are spread over the window's rounds). Printed as milliseconds and as
ratios (end / start; before / after).

    python bench/round_costs.py [--window 20] [--end-round 1930] [--state-mb 39] [--threads 1]
    python bench/round_costs.py --quick   # smoke run; not a measurement
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / 'bench'))

from machine import describe_machine  # noqa: E402

AUTOGAN_CONFIG = REPO / 'configs/autogan/autogan_cifar10.py'
PARTS = ('round', 'plots', 'checkpoint')
CLOCKS = ('wall', 'cpu')
GAN_STATE_MB = 39  # torch.save of SharedGANTrainer(gf_dim=128, df_dim=64).state_dict() after a step


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--window', type=int, default=20, help='timed rounds at the start and at the end')
    parser.add_argument('--end-round', type=int, default=1930,
                        help='first timed round at the end (the official search has 1,953)')
    parser.add_argument('--state-mb', type=float, default=GAN_STATE_MB,
                        help="the estimator's constant state in the checkpoint, MB")
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--quick', action='store_true', help='a few rounds, small state: a smoke run')
    return parser.parse_args()


def build_estimator(state_mb: float):
    import torch
    from nas_tasks.estimators.base import Estimator
    from nas_tasks.result import Result

    class InstantEstimator(Estimator):
        """Scores an arch by a hash of it; its state stands for the shared GAN's weights."""
        scores_stay_valid = False  # as AutoGAN's: its shared GAN keeps training

        def __init__(self):
            self.weights = torch.zeros(int(state_mb * 1e6 / 4))

        def evaluate(self, archs):
            return [Result(zlib.crc32(repr(sorted(a.items())).encode()) % 1000 / 100,
                           costs=self.costs(a), metrics={'fid': 50.0}) for a in archs]

        def costs(self, arch):
            return {'flops': float(zlib.crc32(repr(arch).encode()) % 997) * 1e6, 'params': 4.2e6}

        def state_dict(self):
            return {'weights': self.weights}

        def load_state_dict(self, state):
            self.weights = state['weights']

    return InstantEstimator()


def build_loop(work_dir: Path, plot_interval: int, plot_seconds: float | None, state_mb: float):
    from mmengine.config import Config
    from gan.autogan.space import AutoGANSpace
    from nas_tasks.loop import SearchLoop
    from nas_tasks.plot_schedule import PlotSchedule
    from nas_tasks.strategies.multi_level import MultiLevelSearch

    strategy_cfg = dict(Config.fromfile(str(AUTOGAN_CONFIG)).strategy)
    strategy_cfg.pop('type')
    space = AutoGANSpace()
    loop = SearchLoop(space, MultiLevelSearch(space, seed=0, **strategy_cfg), build_estimator(state_mb),
                      work_dir, candidates_per_round=1, score_name='IS',
                      plot_schedule=PlotSchedule(plot_interval, plot_seconds))
    loop.prepare_work_dir(resume=False)
    loop.timings = {}
    loop.logger.setLevel(logging.WARNING)  # two loops' round lines would drown the figures
    loop._plot = _timed(loop, 'plots', loop._plot)
    loop._save_checkpoint = _timed(loop, 'checkpoint', loop._save_checkpoint)
    return loop


def _timed(loop, name, method):
    def timed(*args, **kwargs):
        start = _clocks()
        try:
            return method(*args, **kwargs)
        finally:
            _add(loop.timings, name, start)
    return timed


def _clocks() -> tuple[float, float]:
    """Wall and CPU seconds: on cores that other processes share, the CPU time of this
    process is the steadier figure; the wall time adds the waits (fsync, the load)."""
    return time.perf_counter(), time.process_time()


def _add(timings: dict, name: str, start: tuple[float, float]) -> None:
    wall, cpu = _clocks()
    timings[f'{name} wall'] = timings.get(f'{name} wall', 0.0) + wall - start[0]
    timings[f'{name} cpu'] = timings.get(f'{name} cpu', 0.0) + cpu - start[1]


@contextlib.contextmanager
def histories_pickled_as_objects():
    """The behaviour before this bench's change: the checkpoint's histories as lists,
    pickled object by object, and every record judged whole or not at every reading."""
    from nas_tasks.history_text import HistoryText
    from nas_tasks.per_entry_cache import PerEntryCache
    encode, values = HistoryText.encode, PerEntryCache.values
    HistoryText.encode = lambda self, history: list(history)
    PerEntryCache.values = lambda self, entries: [self.fn(entry) for entry in entries]
    try:
        yield
    finally:
        HistoryText.encode, PerEntryCache.values = encode, values


def timed_round(loop, before: bool) -> dict:
    loop.timings = {f'{part} {clock}': 0.0 for part in PARTS for clock in CLOCKS}
    start = _clocks()
    with histories_pickled_as_objects() if before else contextlib.nullcontext():
        loop._run_round()
    _add(loop.timings, 'round', start)
    return dict(loop.timings)


def window(loops: dict, rounds: int) -> dict:
    """Mean seconds per round of each loop, the loops' rounds interleaved."""
    samples = {name: [] for name in loops}
    for _ in range(rounds):
        for name, loop in loops.items():
            samples[name].append(timed_round(loop, before=name == 'before'))
    return {name: {part: statistics.mean(s[part] for s in runs) for part in runs[0]}
            for name, runs in samples.items()}


def fast_forward(loop, to_round: int) -> None:
    """Run rounds without plots or checkpoints (not what is measured) up to ``to_round``."""
    plot, save = loop._plot, loop._save_checkpoint
    loop._plot = loop._save_checkpoint = lambda *args, **kwargs: None
    try:
        while loop.round < to_round:
            loop._run_round()
    finally:
        loop._plot, loop._save_checkpoint = plot, save


def main():
    args = parse_args()
    import torch
    torch.set_num_threads(args.threads)
    if args.quick:
        args.window, args.end_round, args.state_mb = 3, 12, 1
    print(describe_machine())
    with tempfile.TemporaryDirectory() as tmp:
        loops = {'before': build_loop(Path(tmp) / 'before', 1, None, args.state_mb),
                 'after': build_loop(Path(tmp) / 'after', 10, 300.0, args.state_mb)}
        for name, loop in loops.items():
            timed_round(loop, before=name == 'before')  # round 0: first-time costs (imports, fonts)
        start = window(loops, args.window)
        started = time.perf_counter()
        fast_forward(loops['after'], args.end_round - 1)
        loops['before'].load_state_dict(loops['after'].state_dict())
        for name, loop in loops.items():
            timed_round(loop, before=name == 'before')  # untimed: the first encoding of the history
        forwarded = time.perf_counter() - started
        end = window(loops, args.window)
        history = len(loops['after'].history)
        finish = {}
        for name, loop in loops.items():
            if not loop._final_records():  # a --quick run ends before any whole architecture
                continue
            begin = time.perf_counter()
            with histories_pickled_as_objects() if name == 'before' else contextlib.nullcontext():
                loop._finish()
            finish[name] = time.perf_counter() - begin

    print(f'AutoGAN stand-in: {args.state_mb:g} MB estimator state, window {args.window} rounds; '
          f'start rounds 1-{args.window}, end rounds {args.end_round}-{args.end_round + args.window - 1} '
          f'({history} records then; fast-forward {forwarded:.0f} s)')
    print(f'{"ms per round (mean)":<28}{"start":>10}{"end":>10}{"end/start":>11}')
    for clock in CLOCKS:
        for name in loops:
            for part in PARTS:
                key = f'{part} {clock}'
                a, b = start[name][key] * 1e3, end[name][key] * 1e3
                ratio = b / a if a else float('nan')
                print(f'{name + " " + key:<28}{a:>10.1f}{b:>10.1f}{ratio:>11.2f}')
        for when, figures in (('start', start), ('end', end)):
            key = f'round {clock}'
            print(f'before/after, whole round ({clock}) at the {when}: '
                  f'{figures["before"][key] / figures["after"][key]:.2f}')
    print(f'finish (best arch, plots, report.html, last checkpoint) after {history} records: '
          + ', '.join(f'{name} {seconds:.2f} s' for name, seconds in finish.items()))


if __name__ == '__main__':
    main()
