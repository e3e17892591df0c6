"""Writes a small synthetic dataset for smoke tests and tutorials.

    python tools/make_toy_data.py coco data/toy_coco
    python tools/make_toy_data.py imagenet data/toy_imagenet --num-classes 4
    python tools/make_toy_data.py cityscapes data/toy_cityscapes --height 64 --width 128
    python tools/make_toy_data.py cifar10 data/toy_cifar10
    python tools/make_toy_data.py LAYOUT --help   (the layout's options)

A second run with the same arguments finds the data and changes nothing.
"""
import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nas_tasks.cli import run_cli  # noqa: E402
from nas_tasks.errors import NasError  # noqa: E402
from nas_tasks.modules import TOY_DATA_GROUP, load_toy_data_layout, toy_data_layouts  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """One subcommand per installed layout (entry points of ``nas_tasks.toy_data``).

    Only the chosen layout's module is imported, for its options: ``--help``
    lists the layouts without importing any task package (or torch).
    """
    argv = sys.argv[1:] if argv is None else argv
    # The top-level parser takes no option but --help: the first word is the layout.
    chosen = next((word for word in argv if not word.startswith('-')), None)
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    layouts = toy_data_layouts()
    if not layouts:
        raise NasError(f'no toy data layouts are installed (entry-point group {TOY_DATA_GROUP}); '
                       'install the project with: pip install -e . (or bash setup.sh)')
    commands = parser.add_subparsers(dest='layout', required=True)
    for name in layouts:
        if name != chosen:
            commands.add_parser(name)
            continue
        layout = load_toy_data_layout(name)
        command = commands.add_parser(name, help=layout.help, description=layout.help)
        command.add_argument('out_dir')
        layout.add_arguments(command)
        command.set_defaults(make=layout.make)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s', stream=sys.stdout)
    try:
        args.make(args)
    except OSError as error:
        raise NasError(f'cannot write the {args.layout} toy data: {error}') from error
    return 0


if __name__ == '__main__':
    run_cli(main)
