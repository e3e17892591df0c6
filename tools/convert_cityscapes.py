"""Write Cityscapes *_gtFine_labelTrainIds.png next to every *_gtFine_labelIds.png.

    python tools/convert_cityscapes.py data/cityscapes [--nproc 8] [--overwrite]

mmseg's CityscapesDataset reads the labelTrainIds maps: the 19 evaluated
classes as 0..18, everything else as 255 (ignored). Unlike mmseg's
tools/dataset_converters/cityscapes.py this needs neither cityscapesscripts nor
the polygon JSON files: it maps the labelIds PNGs of the gtFine download
through the official label table. Maps already written are kept unless
--overwrite, so a second run changes nothing.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nas_tasks.cli import run_cli  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('cityscapes_root', help='the folder that holds gtFine/ (and leftImg8bit/)')
    parser.add_argument('--nproc', type=int, default=1, help='worker processes (default 1)')
    parser.add_argument('--overwrite', action='store_true',
                        help='rewrite labelTrainIds maps that already exist')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from segmentation.cityscapes import convert_gtfine

    summary = convert_gtfine(args.cityscapes_root, nproc=args.nproc, overwrite=args.overwrite)
    print(f'wrote {summary.converted} labelTrainIds maps under '
          f'{os.path.join(args.cityscapes_root, "gtFine")}, kept {summary.skipped} already present')
    return 0


if __name__ == '__main__':
    run_cli(main)
