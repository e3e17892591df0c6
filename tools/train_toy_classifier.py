"""Train the small classifier that scores IS/FID on the toy CIFAR-10.

python tools/train_toy_classifier.py DATA_ROOT [--out PATH] [--epochs N] [--seed S]

DATA_ROOT holds cifar-10-batches-py/ (python tools/make_toy_data.py cifar10
DATA_ROOT writes the toy set); a file there that is not in CIFAR-10's layout
is one line naming it and what it lacks. The weights go to DATA_ROOT/toy_classifier.pth
unless --out says otherwise, with toy_classifier.json beside them recording
the training parameters and the test accuracy. A second run with the same
arguments on the same data finds them and trains nothing:
    python tools/make_toy_data.py cifar10 data/toy_cifar10
    python tools/train_toy_classifier.py data/toy_cifar10
"""
import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nas_tasks.cli import run_cli  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('data_root', help='folder holding cifar-10-batches-py/')
    parser.add_argument('--out', help='weights file (default: DATA_ROOT/toy_classifier.pth)')
    parser.add_argument('--epochs', type=int, help="training epochs (default: the trainer's)")
    parser.add_argument('--seed', type=int, help='initial weights, batch order and noise (default 0)')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s', stream=sys.stdout)
    from gan.toy_classifier import read_record, train_toy_classifier

    # Options not given keep train_toy_classifier's defaults.
    given = {name: value for name, value in (('epochs', args.epochs), ('seed', args.seed))
             if value is not None}
    weights = train_toy_classifier(args.data_root, args.out, **given)
    print(f'test accuracy {read_record(weights)["test_accuracy"]:.4f}')
    print(weights)
    return 0


if __name__ == '__main__':
    run_cli(main)
