"""Train a detector, segmentor or GAN (e.g. fine-tune a found backbone, train a found
generator), mmdet's tools/train.py conventions.

python tools/train.py CONFIG [--work-dir D] [--resume] [--amp] [--cfg-options k=v ...]
torchrun --nproc_per_node N tools/train.py CONFIG --launcher pytorch
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nas_tasks.cli import parse_cfg_options, run_cli  # noqa: E402
from nas_tasks.launchers import add_launcher_argument  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a detector, segmentor or GAN')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--resume', action='store_true',
                        help='resume from the latest checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision (GPU)')
    parser.add_argument('--cfg-options', nargs='+', metavar='KEY=VALUE',
                        help='override config values, e.g. model.backbone.arch=W/best_arch.json')
    add_launcher_argument(parser)
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    from nas_tasks.runner import build_runner
    from nas_tasks.shared_dir import check_shared_work_dir

    overrides = dict(resume=True) if args.resume else {}
    options = parse_cfg_options(args.cfg_options)
    if args.amp:
        options.update({'optim_wrapper.type': 'AmpOptimWrapper',
                        'optim_wrapper.loss_scale': 'dynamic'})
    runner = build_runner(args.config, args.work_dir, args.launcher, options, **overrides)
    # Every rank loads the checkpoint rank 0 wrote when it resumes: one directory for all.
    check_shared_work_dir(runner.work_dir)
    runner.train()
    return 0


if __name__ == '__main__':
    run_cli(main)
