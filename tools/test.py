"""Evaluate a trained detector or segmentor, mmdet's tools/test.py conventions.

python tools/test.py CONFIG CHECKPOINT [--work-dir D] [--cfg-options k=v ...]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nas_tasks.cli import parse_cfg_options, run_cli  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and evaluate) a detector or segmentor')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the evaluation metrics')
    parser.add_argument('--cfg-options', nargs='+', metavar='KEY=VALUE',
                        help='override config values')
    parser.add_argument('--launcher', choices=['none', 'pytorch'], default='none')
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    from nas_tasks.errors import NasError
    from nas_tasks.runner import build_runner

    if not os.path.isfile(args.checkpoint):
        raise NasError(f'checkpoint not found: {args.checkpoint}')
    runner = build_runner(args.config, args.work_dir, args.launcher,
                          parse_cfg_options(args.cfg_options), load_from=args.checkpoint)
    metrics = runner.test()
    for key, value in metrics.items():
        # str(): NumPy's shortest form; format() would print mmseg's float32 63.31 as 63.310001373...
        print(f'{key}: {value!s}')
    return 0


if __name__ == '__main__':
    run_cli(main)
