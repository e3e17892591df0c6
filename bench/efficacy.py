"""Does each task's toy search beat chance? Regenerates the rows of docs/efficacy.md.

For each task: the toy data (and the FNA seed, the AutoGAN toy classifier) if
missing, the search if its work dir holds no ``best_arch.json`` (resumed if it
was killed), then ``tools/diagnose.py CONFIG WORK_DIR --random N`` with K
candidates (sample-based searches; differentiable ones have only the random
baseline). Prints one markdown row per task in the table's columns, with the
commands it ran and their wall times. A benchmark, not a test: it takes from
minutes (one task at a small K and N) to hours (all five at K = N = 16).

    OMP_NUM_THREADS=1 python bench/efficacy.py [--tasks detnas nas_fpn auto_deeplab fna autogan]
        [--k K] [--n N] [--work-root work_dirs/efficacy] [--nproc 2] [--dry-run]

A rerun reuses every finished search and standalone training (the diagnosis
resumes from its records); ``--k`` and ``--n`` can grow between runs (the N
random architectures are the first N of a larger N).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'bench'))

from machine import describe_machine  # noqa: E402

PYTHON = sys.executable
SEED_WEIGHTS = 'work_dirs/mobilenetv2_seed_toy/seed_weights.pth'


@dataclass
class Task:
    """One row: the toy search config, what it needs first, and the settings of its row."""

    name: str
    config: str
    sample_based: bool
    # (path that must exist, command that makes it), in order.
    prerequisites: list[tuple[str, list[str]]] = field(default_factory=list)
    search_options: list[str] = field(default_factory=list)
    diagnose_options: list[str] = field(default_factory=list)
    # Whether --strategy-baseline applies (an estimator whose scores stay valid: not AutoGAN's).
    strategy_baseline: bool = False
    # K and N of the row in docs/efficacy.md (--k / --n override them; the goal
    # is 16 and 16); K is 0 for a differentiable search, which has no candidates to rank.
    k: int = 16
    n: int = 16


COCO = ('data/toy_coco', [PYTHON, 'tools/make_toy_data.py', 'coco', 'data/toy_coco'])
OUTLINE_COCO = ('data/toy_coco_outline', [PYTHON, 'tools/make_toy_data.py', 'coco', 'data/toy_coco_outline',
                                           '--stroke', '3', '--num-train', '128', '--num-heldout', '64'])
CITYSCAPES = ('data/toy_cityscapes', [PYTHON, 'tools/make_toy_data.py', 'cityscapes', 'data/toy_cityscapes'])
FNA_SEED = [
    ('data/toy_imagenet_seed', [PYTHON, 'tools/make_toy_data.py', 'imagenet', 'data/toy_imagenet_seed',
                                '--per-class', '256', '--num-val-per-class', '32']),
    (SEED_WEIGHTS, [PYTHON, 'tools/train.py', 'configs/fna/mobilenetv2_seed_toy.py']),
]
CIFAR10 = [
    ('data/toy_cifar10', [PYTHON, 'tools/make_toy_data.py', 'cifar10', 'data/toy_cifar10']),
    ('data/toy_cifar10/toy_classifier.pth', [PYTHON, 'tools/train_toy_classifier.py', 'data/toy_cifar10']),
]

# The settings of each row: the toy configs as they stand (their own searches and
# standalone recipes); where docs/efficacy.md's row names other options, they are here.
TASKS = {task.name: task for task in [
    Task('detnas', 'configs/detnas/detnas_retinanet_toy.py', True, [OUTLINE_COCO], strategy_baseline=True,
         k=6, n=8),
    # The row's search is shrunk to 8 pyramids (2 controller steps, not 3) to fit the CPU.
    Task('nas_fpn', 'configs/nas_fpn/nas_fpn_retinanet_toy.py', True, [COCO], strategy_baseline=True,
         search_options=['strategy.num_steps=2'], k=4, n=8),
    Task('auto_deeplab', 'configs/auto_deeplab/auto_deeplab_toy.py', False, [CITYSCAPES], k=0, n=16),
    Task('fna', 'configs/fna/fna_deeplabv3_toy.py', False, [*FNA_SEED, CITYSCAPES], k=0, n=8),
    Task('autogan', 'configs/autogan/autogan_cifar10_toy.py', True, CIFAR10, k=8, n=8),
]}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--tasks', nargs='+', choices=list(TASKS), default=list(TASKS))
    parser.add_argument('--k', type=int, help="candidates ranked (sample-based searches; default: the row's)")
    parser.add_argument('--n', type=int, help="random architectures (default: the row's)")
    parser.add_argument('--work-root', default='work_dirs/efficacy')
    parser.add_argument('--strategy-baseline', type=int, default=0, metavar='S',
                        help="also rerun the search's strategy and RandomSearch over S seeds under its "
                             'estimator, where that applies (DetNAS: evaluations only; NAS-FPN: '
                             '2 x S searches of proxy trainings)')
    parser.add_argument('--nproc', type=int, default=1,
                        help='diagnose under torchrun with this many processes (one thread each)')
    parser.add_argument('--dry-run', action='store_true', help='print the commands, run nothing')
    return parser.parse_args()


def run(command: list[str], dry_run: bool) -> float:
    """Run ``command`` from the repository root (one thread per process); its wall seconds."""
    print(f'$ {shlex.join(command)}', flush=True)
    if dry_run:
        return 0.0
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True,
                   env=dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1'))
    return time.perf_counter() - start


def search_command(task: Task, work_dir: Path) -> list[str]:
    command = [PYTHON, 'tools/search.py', task.config, '--work-dir', str(work_dir)]
    if (work_dir / 'search_state.pth').exists() or (work_dir / 'search_state.prev.pth').exists():
        command.append('--resume')
    return command + (['--cfg-options', *task.search_options] if task.search_options else [])


def diagnose_command(task: Task, work_dir: Path, k: int, n: int, nproc: int, seeds: int) -> list[str]:
    launch = ([PYTHON, '-m', 'torch.distributed.run', '--nproc_per_node', str(nproc)]
              if nproc > 1 else [PYTHON])
    command = [*launch, 'tools/diagnose.py', task.config, str(work_dir), '--random', str(n or task.n)]
    if seeds and task.strategy_baseline:
        command += ['--strategy-baseline', str(seeds)]
    command += ['--cfg-options', f'diagnose.num_candidates={(k or task.k) if task.sample_based else 0}',
               *task.search_options, *task.diagnose_options]
    return command + (['--launcher', 'pytorch'] if nproc > 1 else [])


def interval(entry: dict | None, percent: bool = False) -> str:
    if not entry or entry.get('value') is None:
        return '–'
    ci = entry.get('ci')
    if percent:
        return f"{entry['value']:.0f}%" + (f' [{ci[0]:.0f}, {ci[1]:.0f}]' if ci else '')
    return f"{entry['value']:+.3f}" + (f' [{ci[0]:+.3f}, {ci[1]:+.3f}]' if ci else '')


def short_verdict(report: dict) -> str:
    baseline = report['random_baseline']
    words = ('beats chance' if baseline['beat_chance'] else 'worse than chance'
             if baseline['worse_than_chance'] else 'not distinguishable from chance')
    words += f"; the pick {'beats' if baseline['best_random']['pick_beats_it'] else 'is below'} the best random"
    tau = (report.get('agreement') or {}).get('kendall_tau')
    if tau and tau.get('ci'):
        low, high = tau['ci']
        words += ('; τ above 0' if low > 0 else '; τ below 0' if high < 0 else "; τ's interval includes 0")
    strategy = report.get('strategy_baseline')
    if strategy:
        words += (f"; {strategy['strategy']} − RandomSearch under the estimator "
                  f"{interval(strategy['difference'])} over {len(strategy['seeds'])} seeds")
    return words


def row(task: Task, report: dict, commands: list[list[str]], seconds: float) -> str:
    agreement = report.get('agreement') or {}
    baseline = report['random_baseline']
    k = len(report['candidates']) if task.sample_based else '–'
    cells = [task.name, f'`{task.config}`', str(k), str(baseline['scored']),
             interval(agreement.get('kendall_tau')), interval(agreement.get('spearman_rho')),
             interval(baseline['percentile'], percent=True), interval(baseline['minus_median']),
             short_verdict(report), '<br>'.join(f'`{shlex.join(c[1:])}`' for c in commands),
             f'{seconds / 60:.0f} min this run']
    return '| ' + ' | '.join(cells) + ' |'


def main() -> int:
    args = parse_args()
    print(f'# {describe_machine()}; load average {os.getloadavg()[0]:.1f} at the start')
    rows = []
    for name in args.tasks:
        task = TASKS[name]
        work_dir = Path(args.work_root) / name
        commands, seconds = [], 0.0
        for path, command in task.prerequisites:
            if not (REPO / path).exists():
                seconds += run(command, args.dry_run)
        if not (REPO / work_dir / 'best_arch.json').exists():
            commands.append(search_command(task, work_dir))
            seconds += run(commands[-1], args.dry_run)
        commands.append(diagnose_command(task, work_dir, args.k, args.n, args.nproc,
                                         args.strategy_baseline))
        seconds += run(commands[-1], args.dry_run)
        if args.dry_run:
            continue
        report = json.loads((REPO / work_dir / 'diagnostics' / 'report.json').read_text())
        rows.append(row(task, report, commands, seconds))
        print(rows[-1], flush=True)
    print(f'# load average {os.getloadavg()[0]:.1f} at the end')
    print('\n'.join(rows))
    return 0


if __name__ == '__main__':
    sys.exit(main())
