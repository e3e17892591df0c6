"""Writes a small synthetic dataset for smoke tests and tutorials.

    python tools/make_toy_data.py coco data/toy_coco
    python tools/make_toy_data.py imagenet data/toy_imagenet --num-classes 4
    python tools/make_toy_data.py cityscapes data/toy_cityscapes --height 64 --width 128

A second run with the same arguments finds the data and changes nothing.
"""
import argparse
import logging
import sys

from nas_tasks.errors import NasError
from nas_tasks.modules import register_all_modules
from nas_tasks.registry import TOY_DATASETS


def parse_args(argv=None) -> argparse.Namespace:
    """One subcommand per layout in TOY_DATASETS; call register_all_modules() first."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    layouts = parser.add_subparsers(dest='layout', required=True)
    for name, layout in TOY_DATASETS.module_dict.items():
        command = layouts.add_parser(name, help=layout.help)
        command.add_argument('out_dir')
        layout.add_arguments(command)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    try:
        # The task packages register their layouts.
        register_all_modules()
        args = parse_args(argv)
        logging.basicConfig(level=logging.INFO, format='%(message)s', stream=sys.stdout)
        TOY_DATASETS.get(args.layout).make(args)
    except (NasError, OSError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
