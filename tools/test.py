"""Evaluate a trained detector, segmentor or GAN, mmdet's tools/test.py conventions.

python tools/test.py CONFIG CHECKPOINT [--work-dir D] [--cfg-options k=v ...]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nas_tasks.cli import parse_cfg_options, run_cli  # noqa: E402
from nas_tasks.launchers import add_launcher_argument  # noqa: E402


# A metric ``X`` with a spread ``X_std`` (the GAN metric's IS) prints as ``X: mean ± std``.
STD_SUFFIX = '_std'


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and evaluate) a detector, segmentor or GAN')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the evaluation metrics')
    parser.add_argument('--cfg-options', nargs='+', metavar='KEY=VALUE',
                        help='override config values')
    add_launcher_argument(parser)
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
        if key.endswith(STD_SUFFIX) and key[:-len(STD_SUFFIX)] in metrics:
            continue  # printed with its mean
        # str(): NumPy's shortest form; format() would print mmseg's float32 63.31 as 63.310001373...
        std = metrics.get(key + STD_SUFFIX)
        print(f'{key}: {value!s}' if std is None else f'{key}: {value!s} ± {std!s}')
    return 0


if __name__ == '__main__':
    run_cli(main)
