"""Run an architecture search: python tools/search.py CONFIG [--work-dir D] [--resume]."""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nas_tasks.cli import parse_cfg_options, run_cli  # noqa: E402
from nas_tasks.launchers import add_launcher_argument  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('config', help='search config file (configs/...)')
    parser.add_argument('--work-dir', help='where checkpoints, logs and results go '
                        '(default: work_dirs/<config name>)')
    parser.add_argument('--resume', action='store_true',
                        help='continue the search in --work-dir from its last checkpoint')
    parser.add_argument('--retry-failed', action='store_true',
                        help='with --resume: evaluate the candidates that failed once more')
    parser.add_argument('--cfg-options', nargs='+', metavar='KEY=VALUE',
                        help='override config values, e.g. strategy.max_generations=5')
    add_launcher_argument(parser)
    parser.add_argument('--allow-world-size-change', action='store_true',
                        help='with --resume: let a data-parallel state (supernet, search network, '
                        'shared GAN) trained on another number of processes go on, at the new '
                        'total batch')
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    from nas_tasks import dist
    from nas_tasks.search import run_search

    from nas_tasks.world_size import allow_world_size_change

    allow_world_size_change(args.allow_world_size_change)
    best = run_search(args.config, args.work_dir, args.resume,
                      parse_cfg_options(args.cfg_options), args.launcher, args.retry_failed)
    if dist.is_main_process():
        costs = ' '.join(f'{k}={v:.4g}' for k, v in best['costs'].items() if k != 'seconds')
        print(f"best architecture: {os.path.join(best['work_dir'], 'best_arch.json')}")
        print(f"{best['score_name']}={best['score']:.4f} {costs}")
    return 0


if __name__ == '__main__':
    run_cli(main)
