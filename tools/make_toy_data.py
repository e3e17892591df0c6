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
from nas_tasks.toy_data import make_cityscapes, make_coco, make_imagenet


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    layouts = parser.add_subparsers(dest='layout', required=True)

    coco = layouts.add_parser('coco', help='COCO-format detection data (square, disc)')
    coco.add_argument('out_dir')
    coco.add_argument('--num-train', type=int, default=64)
    coco.add_argument('--num-val', type=int, default=16)
    coco.add_argument('--image-size', type=int, default=128)
    coco.add_argument('--seed', type=int, default=0)

    imagenet = layouts.add_parser('imagenet', help='ImageFolder classification data')
    imagenet.add_argument('out_dir')
    imagenet.add_argument('--num-classes', type=int, default=4)
    imagenet.add_argument('--per-class', type=int, default=32)
    imagenet.add_argument('--num-val-per-class', type=int, default=8)
    imagenet.add_argument('--image-size', type=int, default=64)
    imagenet.add_argument('--seed', type=int, default=0)

    cityscapes = layouts.add_parser(
        'cityscapes', help='street scenes in the Cityscapes layout (leftImg8bit/, gtFine/)')
    cityscapes.add_argument('out_dir')
    cityscapes.add_argument('--num-train', type=int, default=16)
    cityscapes.add_argument('--num-val', type=int, default=8)
    cityscapes.add_argument('--height', type=int, default=64)
    cityscapes.add_argument('--width', type=int, default=128)
    cityscapes.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s', stream=sys.stdout)
    try:
        if args.layout == 'coco':
            make_coco(args.out_dir, args.num_train, args.num_val, args.image_size, args.seed)
        elif args.layout == 'cityscapes':
            make_cityscapes(args.out_dir, args.num_train, args.num_val,
                            (args.height, args.width), args.seed)
        else:
            make_imagenet(args.out_dir, args.num_classes, args.per_class,
                          args.num_val_per_class, args.image_size, args.seed)
    except (NasError, OSError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
