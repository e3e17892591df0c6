"""Auto-DeepLab search step: peak memory and step time with and without cell checkpointing.

One search step is one trainer iteration once architecture updates have
started: a first-order architecture step on one batch, then a weight step on
another (DifferentiableTrainer.train_step). Each setting runs in a process of
its own, so its peak is the step's alone: on CPU the growth of the peak RSS
over the RSS before the first step; on GPU torch.cuda.max_memory_allocated
over what was allocated before it.

The paper's search setting (F = 8, L = 12, B = 5, batch 2, crop 321) comes
first; where the plain step does not fit in memory, the next of --crops is
tried, and the crop measured is printed.

    python bench/auto_deeplab.py [--crops 321 257 193 129] [--steps 2] [--device cpu]
"""
import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / 'bench'))

from machine import describe_machine  # noqa: E402

DOES_NOT_FIT = 3  # exit code of a child whose step ran out of memory
NUM_CLASSES = 19


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--crops', type=int, nargs='+', default=[321, 257, 193, 129],
                        help='crop sizes to try, largest first')
    parser.add_argument('--layers', type=int, default=12)
    parser.add_argument('--filter-multiplier', type=int, default=8)
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--steps', type=int, default=2, help='timed steps after the first')
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda'")
    parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--crop', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--with-cp', type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args()


def current_rss_bytes() -> int:
    with open('/proc/self/statm') as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def measure_one_setting(args) -> dict:
    """Run in the child: build the search network and trainer, run the steps."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import TensorDataset

    from backbones.auto_deeplab.search_network import AutoDeepLabSearchNet
    from nas_tasks.differentiable.trainer import DifferentiableTrainer

    class SearchLoss(torch.nn.Module):
        """The search network with the pixel-wise cross-entropy the trainer minimises."""

        def __init__(self, net):
            super().__init__()
            self.net = net

        @property
        def arch_params(self):
            return self.net.arch_params

        def forward(self, batch):
            images, labels = (tensor.to(args.device) for tensor in batch)
            return F.cross_entropy(self.net(images), labels)

    device = torch.device(args.device)
    torch.manual_seed(0)
    net = AutoDeepLabSearchNet(NUM_CLASSES, num_layers=args.layers,
                               filter_multiplier=args.filter_multiplier, with_cp=bool(args.with_cp))
    model = SearchLoss(net).to(device)

    def batch():
        return (torch.randn(args.batch, 3, args.crop, args.crop),
                torch.randint(0, NUM_CLASSES, (args.batch, args.crop, args.crop)))

    with tempfile.TemporaryDirectory() as work_dir:
        trainer = DifferentiableTrainer(model, TensorDataset(*batch()), TensorDataset(*batch()),
                                        work_dir=work_dir, dataloader=dict(batch_size=args.batch))
        weight_batch, arch_batch = batch(), batch()
        if device.type == 'cuda':
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
        else:
            before = current_rss_bytes()
        times = []
        for _ in range(1 + args.steps):
            start = time.perf_counter()
            trainer.train_step(weight_batch, arch_batch)
            if device.type == 'cuda':
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        peak = (torch.cuda.max_memory_allocated() if device.type == 'cuda'
                else peak_rss_bytes()) - before
    # The first step also allocates the optimizers' state; the timed ones follow it.
    return dict(peak_mib=peak / 2**20, step_seconds=statistics.median(times[1:] or times))


def child_main(args) -> int:
    if args.device == 'cpu':
        # Fail with an allocation error at the machine's RAM instead of swapping
        # or meeting the OOM killer.
        with open('/proc/meminfo') as meminfo:
            total_kib = int(meminfo.readline().split()[1])
        resource.setrlimit(resource.RLIMIT_AS, (total_kib * 1024, resource.RLIM_INFINITY))
    try:
        result = measure_one_setting(args)
    except (RuntimeError, MemoryError) as error:
        if 'memory' not in str(error).lower() and not isinstance(error, MemoryError):
            raise
        return DOES_NOT_FIT
    print(json.dumps(result))
    return 0


def run_child(args, crop: int, with_cp: bool) -> dict | None:
    command = [sys.executable, __file__, '--child', '--crop', str(crop),
               '--with-cp', str(int(with_cp)), '--layers', str(args.layers),
               '--filter-multiplier', str(args.filter_multiplier), '--batch', str(args.batch),
               '--steps', str(args.steps), '--device', args.device]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode == DOES_NOT_FIT:
        return None
    if result.returncode != 0:
        raise SystemExit(f'the benchmark step failed:\n{result.stderr[-3000:]}')
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    args = parse_args()
    if args.child:
        return child_main(args)
    print(describe_machine())
    print(f'search step: L={args.layers} F={args.filter_multiplier} B=5 batch {args.batch}, '
          f'{args.device}, median of {args.steps} steps after the first')
    for crop in args.crops:
        plain = run_child(args, crop, with_cp=False)
        if plain is None:
            print(f'crop {crop}: the plain step does not fit in memory')
            continue
        checkpointed = run_child(args, crop, with_cp=True)
        print(f'crop {crop}x{crop}:')
        for name, result in (('plain', plain), ('checkpointed cells', checkpointed)):
            print(f'  {name:<19} peak {result["peak_mib"]:9.0f} MiB   '
                  f'step {result["step_seconds"]:8.2f} s')
        print(f'  checkpointed / plain: memory {checkpointed["peak_mib"] / plain["peak_mib"]:.2f}x, '
              f'step time {checkpointed["step_seconds"] / plain["step_seconds"]:.2f}x')
        return 0
    print('no crop fits; try smaller --crops')
    return 1


if __name__ == '__main__':
    sys.exit(main())
