"""Split a COCO annotation file into a search-train part and a held-out part.

python tools/split_coco.py ANN_FILE --held-out N|FRACTION [--seed S] [--out-dir DIR]

The COCO search configs train on the first part and rank candidates on the
second, so val2017 stays untouched for the final result:
    python tools/split_coco.py data/coco/annotations/instances_train2017.json \\
        --held-out 5000 --seed 0
writes instances_train2017_search_train.json and
instances_train2017_search_heldout.json next to it (or into --out-dir).
The same arguments always write byte-identical files.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nas_tasks.cli import run_cli  # noqa: E402


def images_or_fraction(text: str) -> int | float:
    """'5000' -> 5000 images, '0.05' -> a fraction of the images."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of images (5000) or a fraction (0.05), got '{text}'") from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('ann_file', help='COCO annotation file, e.g. instances_train2017.json')
    parser.add_argument('--held-out', type=images_or_fraction, required=True,
                        help='images to hold out: a count (5000) or a fraction in (0, 1)')
    parser.add_argument('--seed', type=int, default=0, help='which images are held out')
    parser.add_argument('--out-dir', help="where both parts go (default: the annotation file's folder)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from detection.coco_split import write_split

    written = write_split(args.ann_file, args.held_out, args.seed, args.out_dir)
    print(f'{written.train}: {written.num_train} images (search training)')
    print(f'{written.held_out}: {written.num_held_out} images (held out: ranks candidates)')
    return 0


if __name__ == '__main__':
    run_cli(main)
