"""A toy CIFAR-10 in the real python-batch format, drawn with :mod:`nas_tasks.toy_data`.

``tools/make_toy_data.py cifar10 OUT_DIR`` (:class:`Cifar10ToyData`, an entry point of
``nas_tasks.toy_data`` in pyproject.toml) writes ``OUT_DIR/cifar-10-batches-py/``
with ``data_batch_1`` .. ``data_batch_5``, ``test_batch`` and ``batches.meta``.
:class:`gan.cifar10_batches.CIFAR10PythonBatches` reads it (torchvision's
``CIFAR10`` without its MD5 checks, which no other data than the real CIFAR-10
can pass).

Each of the 10 classes is one shape in one colour family (five shapes, warm
or cool) on the core's noisy background: a small classifier tells them apart,
which is what the toy IS/FID extractor needs.

The files are Python 2 pickles, as the real ones are: their string keys load
as ``b'data'`` with ``encoding='bytes'`` (CIFAR's own loading recipe) and as
``'data'`` with ``encoding='latin1'`` (torchvision's).
"""
from __future__ import annotations

import colorsys
import pickle
import struct
from pathlib import Path

import numpy as np

from gan.cifar10_batches import FOLDER
from nas_tasks.io import atomic_write
from nas_tasks.toy_data import (ToyDataLayout, check_positive, check_sizes_and_seed, generate,
                                image_rng, make_shape, render, sample_box)

IMAGE_SIZE = 32
NUM_TRAIN_BATCHES = 5
CLASS_SHAPES = ('square', 'disc', 'triangle', 'cross', 'star')
# Hue ranges (as fractions of the colour circle) of the two colour families.
HUE_FAMILIES = {'warm': (0.95, 1.1), 'cool': (0.5, 0.65)}
CLASS_NAMES = tuple(f'{family} {shape}' for family in HUE_FAMILIES for shape in CLASS_SHAPES)
SPLIT_KEYS = {'train': 0, 'test': 1}  # each split's key of image_rng


class _Python2Str(str):
    """A string the CIFAR pickler writes as a Python 2 ``str``."""


class _CifarPickler(pickle._Pickler):
    """The pure-Python pickler, writing :class:`_Python2Str` as Python 2 byte strings."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_python2_str(self, obj):
        raw = obj.encode('latin1')
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack('<i', len(raw)) + raw)
        self.memoize(obj)

    dispatch[_Python2Str] = save_python2_str


def _save_pickle(path: Path, record: dict) -> None:
    atomic_write(path, lambda f: _CifarPickler(f, protocol=2).dump(record))


def _class_colour(rng: np.random.Generator, class_index: int) -> np.ndarray:
    low, high = list(HUE_FAMILIES.values())[class_index // len(CLASS_SHAPES)]
    hue = rng.uniform(low, high) % 1.0
    return np.array(colorsys.hsv_to_rgb(hue, rng.uniform(0.75, 1), rng.uniform(0.75, 1))) * 255


def _image(seed: int, split: str, index: int, class_index: int) -> np.ndarray:
    rng = image_rng(seed, SPLIT_KEYS[split], index)
    shape = make_shape(CLASS_SHAPES[class_index % len(CLASS_SHAPES)],
                       sample_box(rng, IMAGE_SIZE), rng, IMAGE_SIZE)
    shape.colour = _class_colour(rng, class_index)
    return render(rng, IMAGE_SIZE, IMAGE_SIZE, [shape])


def _batch(name: str, seed: int, split: str, first: int, count: int) -> dict:
    """``count`` images from running index ``first``, classes in turn; CIFAR's record."""
    labels = [(first + i) % len(CLASS_NAMES) for i in range(count)]
    images = [_image(seed, split, first + i, label) for i, label in enumerate(labels)]
    # CIFAR rows: the 1024 red values, then green, then blue, each row-major.
    data = np.stack([image.transpose(2, 0, 1).reshape(-1) for image in images])
    return {
        _Python2Str('batch_label'): _Python2Str(name),
        _Python2Str('labels'): labels,
        _Python2Str('data'): data.astype(np.uint8),
        _Python2Str('filenames'): [_Python2Str(f'{split}_{first + i:06d}.png')
                                   for i in range(count)],
    }


def _write_cifar10(out: Path, train_per_class: int, test_per_class: int, seed: int) -> None:
    folder = out / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    num_train = train_per_class * len(CLASS_NAMES)
    bounds = np.linspace(0, num_train, NUM_TRAIN_BATCHES + 1).round().astype(int)
    for number, (first, end) in enumerate(zip(bounds[:-1], bounds[1:]), start=1):
        name = f'training batch {number} of {NUM_TRAIN_BATCHES}'
        _save_pickle(folder / f'data_batch_{number}',
                     _batch(name, seed, 'train', int(first), int(end - first)))
    _save_pickle(folder / 'test_batch', _batch('testing batch 1 of 1', seed, 'test', 0,
                                               test_per_class * len(CLASS_NAMES)))
    _save_pickle(folder / 'batches.meta', {
        _Python2Str('num_cases_per_batch'): int(bounds[1]),
        _Python2Str('label_names'): [_Python2Str(name) for name in CLASS_NAMES],
        _Python2Str('num_vis'): IMAGE_SIZE * IMAGE_SIZE * 3,
    })


def make_cifar10(out_dir, train_per_class: int = 100, test_per_class: int = 20,
                 seed: int = 0) -> Path:
    """Writes (or finds) the toy CIFAR-10 under ``out_dir/cifar-10-batches-py``."""
    check_positive(train_per_class=train_per_class, test_per_class=test_per_class)
    check_sizes_and_seed(seed)
    params = {'train_per_class': train_per_class, 'test_per_class': test_per_class, 'seed': seed}
    return generate(out_dir, 'cifar10', params, _write_cifar10)


class Cifar10ToyData(ToyDataLayout):
    help = 'CIFAR-10 python batches: 10 shape/colour classes of 32x32 images'

    @staticmethod
    def add_arguments(parser):
        parser.add_argument('--train-per-class', type=int, default=100)
        parser.add_argument('--test-per-class', type=int, default=20)
        parser.add_argument('--seed', type=int, default=0)

    @staticmethod
    def make(args):
        return make_cifar10(args.out_dir, args.train_per_class, args.test_per_class, args.seed)
