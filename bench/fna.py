"""FNA benchmarks on CPU, measured side by side in one run.

Seed mobilenetv2_100 (timm's initial weights, written to a temporary file),
super network of the detection depths (4, 4, 4, 4, 4, 1), features at
out_indices (1, 2, 3, 4).

1. Parameter remapping: the seed into the super network
   (``FNASuperNet(...).init_weights()``, every candidate of every layer) and
   into a target (``remap_into_adapted`` for 'fna_retinanet_mobilenetv2'), next
   to building the networks.
2. The weight step (forward, backward, SGD step) of the super network on one
   sampled path (``single_path=True``, ``uniform=False``, ``resample(step)``
   inside the timed step), over the same path built as a plain timm model
   (``build_adapted(..., features_only=True)``); same batch, interleaved
   repetitions, medians, for several sampled paths. Goal: at most 1.10.
   Beside the seconds, what each step computes (forward GFLOP and aten
   operator calls), which the load of the machine cannot change.
3. The architecture step (every candidate weighted by softmax(alpha), backward
   to alpha, Adam step on alpha) over the weight step, interleaved with it:
   the core's Architect (first order: the weights frozen for the step, as the
   official code's set_param_grad_state, so no weight gradient is computed;
   goal: at most 3x), and, for comparison, the same step computing every
   weight's gradient too (what the Architect did before: 5.49x).
4. The search cost the paper reports (not measured here).

The loss is the mean square of every returned feature map: the step times
are the backbone's, the part where super network and plain network differ.

    python bench/fna.py [--batch 4] [--size 224] [--paths 3] [--reps 7] [--arch-reps 3]
                        [--threads N] [--searchable-norm untracked|seed] [--profile] [--quick]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / 'bench'))

from autogan import duration, gflop_of, interleaved, load_average, median, work_of  # noqa: E402
from machine import describe_machine  # noqa: E402

SEED = 'mobilenetv2_100'
TARGET = 'fna_retinanet_mobilenetv2'
OUT_INDICES = (1, 2, 3, 4)
GOAL = 1.10
ARCH_GOAL = 3.0  # the architecture step over the weight step
# The paper's cost tables (Fang et al., ICLR 2020, det_cost / seg_cost; reference sheet 3.3).
PAPER_COSTS = [
    ('FNA RetinaNet, total', '9.2 GPU-days (search 6, target fine-tuning 3.2)'),
    ('DetNAS, total', '68 GPU-days (supernet pre-train 12 + fine-tune 12, search 20, '
                      'target pre-train 12 + fine-tune 12)'),
    ('FNA SSDLite, total', '21.6 GPU-days (search 6.6, fine-tuning 15)'),
    ('FNA DeepLabv3, ArchAdapt (search)', '1.4 GPU-hours'),
    ('FNA DeepLabv3, total', '35.8 GPU-hours (ArchAdapt 1.4 + ParamAdapt 34.4)'),
]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # Batch 4 keeps the run near 3 minutes on 2 shared cores; the paper searched with
    # 1 image a GPU (8 in all) at 1333x800.
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--size', type=int, default=224, help='input side in pixels')
    parser.add_argument('--paths', type=int, default=3, help='sampled paths in the step ratio')
    parser.add_argument('--reps', type=int, default=7,
                        help='timed interleaved repetitions of each step (after one warm-up)')
    parser.add_argument('--arch-reps', type=int, default=3,
                        help='timed interleaved repetitions of the architecture steps')
    parser.add_argument('--remap-reps', type=int, default=3, help='timed remappings of each kind')
    parser.add_argument('--threads', type=int, default=None, help='torch threads')
    parser.add_argument('--searchable-norm', default='untracked', choices=('untracked', 'seed'),
                        help="the super network's BatchNorm in searchable layers: the official "
                             "search's (untracked, non-affine) or the seed's, as the plain model")
    parser.add_argument('--profile', action='store_true',
                        help="print the operators that take each step's time (torch.profiler)")
    parser.add_argument('--quick', action='store_true',
                        help='smoke run: batch 2 at 64 px, one path, one repetition; its '
                             'figures are not measurements')
    args = parser.parse_args()
    if args.quick:
        args.batch, args.size, args.paths, args.reps, args.arch_reps, args.remap_reps = \
            2, 64, 1, 1, 1, 1
    return args


def write_seed_weights(directory: Path) -> Path:
    """mobilenetv2_100 with timm's initial weights, as a plain timm state dict file."""
    from backbones.fna.seed import create_seed
    from nas_tasks.io import atomic_torch_save
    path = directory / f'{SEED}_seed.pth'
    atomic_torch_save(create_seed(SEED).state_dict(), path)
    return path


def timed(run):
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def bench_remap(args, seed: dict) -> None:
    from backbones.fna import FNASuperNet, build_adapted, remap_into_adapted
    from backbones.fna.seed import create_seed

    print('\n== 1. Parameter remapping of the seed (median of '
          f'{args.remap_reps}; each includes reading the seed file and building the seed)')
    seconds: dict[str, list[float]] = {}
    for _ in range(args.remap_reps):
        build, supernet = timed(lambda: FNASuperNet(seed))
        remap, _ = timed(supernet.init_weights)
        target_build, _ = timed(lambda: build_adapted(TARGET, num_classes=0))
        target_remap, (_, target_report) = timed(lambda: remap_into_adapted(TARGET, seed))
        read_seed, _ = timed(lambda: create_seed(SEED, seed['weights']))
        for name, value in (('build', build), ('remap', remap), ('target_build', target_build),
                            ('target_remap', target_remap), ('read_seed', read_seed)):
            seconds.setdefault(name, []).append(value)
    report = supernet.remap_report
    tensors = sum(value.numel() for value in supernet.state_dict().values())
    print(f'super network ({SEED}, depths {supernet.layout.depths}, '
          f'{len(report.remapped)} tensors remapped, {len(report.kept_init)} kept their init, '
          f'{tensors / 1e6:.1f} M values): build {median(seconds["build"]):.2f} s, '
          f'remap (init_weights) {median(seconds["remap"]):.2f} s')
    print(f'target {TARGET} ({len(target_report.remapped)} tensors remapped, '
          f'{len(target_report.kept_init)} kept their init): build '
          f'{median(seconds["target_build"]):.2f} s, remap_into_adapted (builds it too) '
          f'{median(seconds["target_remap"]):.2f} s')
    print(f'of which reading the seed (create_seed with the file): '
          f'{median(seconds["read_seed"]):.2f} s')


def sampled_ops(supernet) -> list[list[str]]:
    """The op names of the path the super network runs in single-path mode now."""
    params = supernet.arch_params
    indices = {name: params.sampled_indices(name).tolist() for name in params.names()}
    rows = iter(supernet.layer_rows())
    ops = []
    for depth in supernet.layout.depths:
        stage = []
        for layer in range(depth):
            group, row = next(rows)
            stage.append(supernet.layout.ops(layer)[indices[group][row]])
        ops.append(stage)
    return ops


def forward_gflop(forward) -> float:
    """GFLOP of one forward pass. Forward only: torch's FlopCounterMode counts the
    weight gradient of a grouped (depthwise) convolution as if it were dense,
    channels times too many (96x for a 96-channel depthwise conv), which would
    swamp an MBConv network's count."""
    import torch
    with torch.no_grad():
        return gflop_of(forward)


def feature_loss(features):
    return sum(feature.square().mean() for feature in features)


def weight_step(model, optimizer, images) -> None:
    optimizer.zero_grad(set_to_none=True)
    feature_loss(model(images)).backward()
    optimizer.step()


def bench_steps(args, seed: dict) -> None:
    import torch

    from backbones.fna import FNASuperNet, build_adapted

    torch.manual_seed(0)
    supernet = FNASuperNet(seed, out_indices=OUT_INDICES, searchable_norm=args.searchable_norm)
    supernet.init_weights()
    supernet.train()
    params = supernet.arch_params
    params.single_path, params.uniform = True, False
    alpha = list(params.parameters())
    alpha_ids = {id(p) for p in alpha}
    weights = [p for p in supernet.parameters() if id(p) not in alpha_ids]
    # As the differentiable trainer: alpha receives gradients in the weight step too.
    weight_optimizer = torch.optim.SGD(weights, lr=1e-4, momentum=0.9, weight_decay=1e-4)
    arch_optimizer = torch.optim.Adam(alpha, lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    images = torch.randn(args.batch, 3, args.size, args.size)
    warmup = 1

    print('\n== 2. Weight step: super network on one sampled path / the same path as a plain '
          'timm model')
    print(f'batch {args.batch} at {args.size}x{args.size}, loss = mean square of the 4 feature '
          f'maps; forward, backward, SGD step; {args.reps} interleaved steps each after {warmup} '
          f'warm-up; medians; searchable BatchNorm: {args.searchable_norm}')
    print(f'{"path":<6} {"super ms":>9} {"plain ms":>9} {"ratio":>6} {"CPU-time ratio":>15} '
          f'{"fwd GFLOP super/plain":>22} {"aten ops super/plain":>21}  ops (skips dropped)')
    ratios, cpu_ratios, step_seconds = [], [], []
    for path_index in range(args.paths):
        step = 1000 + path_index
        params.resample(step)
        ops = sampled_ops(supernet)
        plain = build_adapted(dict(seed=SEED, arch_def=supernet.layout.arch_def(ops)),
                              features_only=True, out_indices=OUT_INDICES).train()
        plain_optimizer = torch.optim.SGD(plain.parameters(), lr=1e-4, momentum=0.9,
                                          weight_decay=1e-4)

        def super_step():
            params.resample(step)  # the trainer resamples every iteration
            weight_step(supernet, weight_optimizer, images)

        def plain_step():
            weight_step(plain, plain_optimizer, images)

        cpu: dict[str, list[float]] = {}
        seconds = interleaved(dict(super=super_step, plain=plain_step), args.reps,
                              warmup=warmup, cpu=cpu)
        ratio = median(seconds['super']) / median(seconds['plain'])
        ratios.append(ratio)
        cpu_ratios.append(median(cpu['super']) / median(cpu['plain']))
        step_seconds.append(median(seconds['super']))
        super_gflop, plain_gflop = forward_gflop(lambda: supernet(images)), forward_gflop(
            lambda: plain(images))
        super_calls, plain_calls = work_of(super_step)[1], work_of(plain_step)[1]
        compact = ' | '.join(' '.join(op.replace('_', '') for op in stage if op != 'skip')
                             for stage in ops)
        print(f'{path_index:<6} {1000 * median(seconds["super"]):>9.1f} '
              f'{1000 * median(seconds["plain"]):>9.1f} {ratio:>6.3f} {cpu_ratios[-1]:>15.3f} '
              f'{f"{super_gflop:.3f}/{plain_gflop:.3f}":>22} '
              f'{f"{super_calls}/{plain_calls}":>21}  {compact}')
        if args.profile or ratio > GOAL:
            profile_steps(dict(super=super_step, plain=plain_step))
    print(f'median ratio over {len(ratios)} paths: {median(ratios):.3f} (goal <= {GOAL:.2f}); '
          f'range {min(ratios):.3f} to {max(ratios):.3f}; CPU-time ratio: median '
          f'{median(cpu_ratios):.3f}')

    # -- 3. the architecture step --------------------------------------------------------
    from nas_tasks.differentiable.architect import Architect

    def loss_of(batch):
        return feature_loss(supernet(batch))

    architect = Architect(loss_of, weights, alpha, weight_optimizer, arch_optimizer)

    def core_arch_step():
        with params.all_paths():  # every candidate, weighted by softmax(alpha)
            architect.step(images)

    def arch_step_with_weight_grads():
        with params.all_paths():
            for param in weights + alpha:
                param.grad = None
            loss_of(images).backward()
            for param in weights:
                param.grad = None
            arch_optimizer.step()

    step = 2000

    def super_step():
        params.resample(step)
        weight_step(supernet, weight_optimizer, images)

    print('\n== 3. Architecture step (all candidates weighted by softmax(alpha), backward to '
          'alpha, Adam step) / weight step (one sampled path)')
    print(f'same batch; {args.arch_reps} interleaved steps each after {warmup} warm-up; medians')
    cpu = {}
    seconds = interleaved(dict(weight=super_step, arch=core_arch_step,
                               arch_weight_grads=arch_step_with_weight_grads), args.arch_reps,
                          warmup=warmup, cpu=cpu)
    params.resample(step)
    path_gflop = forward_gflop(lambda: supernet(images))
    with params.all_paths():
        all_gflop = forward_gflop(lambda: supernet(images))
    gflop = dict(weight=path_gflop, arch=all_gflop, arch_weight_grads=all_gflop)
    weight_seconds = median(seconds['weight'])
    for name, label in (('weight', 'weight step, sampled path'),
                        ('arch', 'arch step, the core Architect (weights frozen)'),
                        ('arch_weight_grads', 'arch step computing weight grads too (before)')):
        print(f'  {label:<62} {median(seconds[name]):7.2f} s  '
              f'{median(seconds[name]) / weight_seconds:6.2f}x the weight step  '
              f'(CPU time {median(cpu[name]) / median(cpu["weight"]):5.2f}x, '
              f'forward GFLOP {gflop[name]:7.2f} = {gflop[name] / gflop["weight"]:5.2f}x)')
    ratio = median(seconds['arch']) / weight_seconds
    print(f'architecture step / weight step: {ratio:.2f}x (goal <= {ARCH_GOAL:.0f}x)')
    if args.profile:
        profile_steps(dict(weight=super_step, arch=core_arch_step,
                           arch_weight_grads=arch_step_with_weight_grads))


def profile_steps(steps: dict, rounds: int = 3) -> None:
    """The operators that take each step's time: self CPU time per step, averaged
    over ``rounds`` profiled steps of each, taken in turn (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile
    totals: dict[str, dict[str, list[float]]] = {name: {} for name in steps}
    for _ in range(rounds):
        for name, run in steps.items():
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                run()
            for event in prof.key_averages():
                entry = totals[name].setdefault(event.key, [0.0, 0])
                entry[0] += event.self_cpu_time_total / 1e3 / rounds
                entry[1] += event.count / rounds
    for name, ops in totals.items():
        total = sum(ms for ms, _ in ops.values())
        print(f'    {name}: {total:.0f} ms of operator self time a step (mean of {rounds}); '
              'the largest:')
        for key, (ms, calls) in sorted(ops.items(), key=lambda item: -item[1][0])[:8]:
            print(f'      {key:<40} {ms:9.1f} ms {100 * ms / total:5.1f}%  {calls:6.0f} calls')


def report_paper_cost() -> None:
    print('\n== 4. Search cost reported by the paper (Fang et al., ICLR 2020; not measured here)')
    for what, cost in PAPER_COSTS:
        print(f'  {what:<36} {cost}')
    print('  FNA RetinaNet total / DetNAS total: 68 / 9.2 = 7.4x cheaper (the paper\'s figure)')


def main():
    args = parse_args()
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    # Other processes' load inflates the seconds; interleaving spreads it over both sides
    # of each ratio, and the load averages say how much there was.
    print(f'{describe_machine()}; load average at the start: {load_average()}'
          + ('\n--quick: a smoke run; its figures are not measurements' if args.quick else ''))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        seed = dict(name=SEED, weights=str(write_seed_weights(Path(tmp))))
        bench_remap(args, seed)
        bench_steps(args, seed)
    report_paper_cost()
    print(f'\nload average at the end: {load_average()}; the run took '
          f'{duration(time.perf_counter() - start)}')


if __name__ == '__main__':
    from nas_tasks.cli import run_cli
    run_cli(main)
