"""Toy data of the detection tasks, drawn with :mod:`nas_tasks.toy_data`.

* ``make_coco``: COCO-format detection data (``square`` and ``disc``) with
  ``train/``, ``val/`` and ``annotations/instances_{train,val}.json``; what
  the DetNAS and NAS-FPN toy searches read.
* ``make_imagenet``: a torchvision ``ImageFolder`` tree of one shape per
  image, for pre-training the DetNAS supernet as a classifier.

:class:`CocoToyData` and :class:`ImageNetToyData` are the ``coco`` and
``imagenet`` commands of ``tools/make_toy_data.py`` (entry points of
``nas_tasks.toy_data`` in pyproject.toml).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils

from nas_tasks.data_paths import register_data_hint
from nas_tasks.errors import NasError
from nas_tasks.validation import check_int
from nas_tasks.io import atomic_write_json
from nas_tasks.toy_data import (GENERATOR_VERSION, SHAPES, SPLITS, Box, Shape, ToyDataLayout,
                                check_positive, check_sizes_and_seed, generate, image_rng,
                                make_shape, render, sample_box, save_png, try_place)

COCO_SHAPES = ('square', 'disc')
MAX_OBJECTS = 3

register_data_hint('CocoDataset',
                   'generate the toy set with: python tools/make_toy_data.py coco data/toy_coco '
                   '(the DetNAS toy configs: coco data/toy_coco_outline --stroke 3 --num-train 128 '
                   '--num-heldout 64)')


# --- COCO layout ---

def _scene(rng: np.random.Generator, image_size: int, first: str) -> list[Shape]:
    """1..3 COCO shapes; the first one's category is given so splits hold both."""
    count = int(rng.integers(1, MAX_OBJECTS + 1))
    names = [first] + [COCO_SHAPES[int(i)] for i in rng.integers(0, len(COCO_SHAPES), count - 1)]
    shapes: list[Shape] = []
    boxes: list[Box] = []
    for name in names:
        try_place(shapes, boxes, name, rng, image_size)
    return shapes


def _annotation(shape: Shape, ann_id: int, image_id: int, image_size: int) -> dict:
    rle = mask_utils.encode(np.asfortranarray(shape.visible.astype(np.uint8)))
    if shape.occluded:
        segmentation = {'size': [image_size, image_size], 'counts': rle['counts'].decode('ascii')}
    else:
        segmentation = [shape.polygon]
    return {
        'id': ann_id,
        'image_id': image_id,
        'category_id': COCO_SHAPES.index(shape.name) + 1,
        'bbox': [float(v) for v in mask_utils.toBbox(rle)],
        'area': int(shape.visible.sum()),
        'iscrowd': 0,
        'segmentation': segmentation,
    }


# 'heldout' ranks search candidates; 'val' reports the found model's results.
COCO_SPLITS = (*SPLITS, 'heldout')


def _write_coco_split(out: Path, split: str, first_id: int, count: int,
                      image_size: int, seed: int, stroke: int) -> None:
    (out / split).mkdir(exist_ok=True)
    images, annotations = [], []
    for index in range(count):
        image_id = first_id + index
        rng = image_rng(seed, COCO_SPLITS.index(split), index)
        shapes = _scene(rng, image_size, first=COCO_SHAPES[index % len(COCO_SHAPES)])
        file_name = f'{image_id:06d}.png'
        save_png(render(rng, image_size, image_size, shapes, stroke), out / split / file_name)
        images.append({'id': image_id, 'file_name': file_name,
                       'width': image_size, 'height': image_size})
        for shape in shapes:
            annotations.append(_annotation(shape, len(annotations) + 1, image_id, image_size))
    coco = {
        'info': {'description': f'nas_tasks toy shapes, {split} split',
                 'version': str(GENERATOR_VERSION), 'seed': seed},
        'licenses': [],
        'images': images,
        'annotations': annotations,
        'categories': [{'id': i + 1, 'name': name, 'supercategory': 'shape'}
                       for i, name in enumerate(COCO_SHAPES)],
    }
    (out / 'annotations').mkdir(exist_ok=True)
    atomic_write_json(out / 'annotations' / f'instances_{split}.json', coco)


def _write_coco(out: Path, num_train: int, num_val: int, num_heldout: int, image_size: int,
                seed: int, stroke: int = 0) -> None:
    # Image ids run on from train into val and heldout, so no two splits share one.
    _write_coco_split(out, 'train', 1, num_train, image_size, seed, stroke)
    _write_coco_split(out, 'val', 1 + num_train, num_val, image_size, seed, stroke)
    _write_coco_split(out, 'heldout', 1 + num_train + num_val, num_heldout, image_size, seed, stroke)


def make_coco(out_dir, num_train: int = 64, num_val: int = 16, num_heldout: int = 16,
              image_size: int = 128, seed: int = 0, stroke: int = 0) -> Path:
    """Writes (or finds) COCO-format ``square``/``disc`` detection data.

    Three splits: ``train`` trains (supernets, proxies, fine-tuning),
    ``heldout`` ranks search candidates, ``val`` reports the found model's
    results, as a COCO search ranks on a held-out part of train2017 and
    reports on val2017.

    ``stroke`` > 0 draws the shapes as outlines of that width (px) around
    the background: telling a square from a disc, and finding the middle of
    either, then takes a view of the whole object, so the receptive field
    (kernel sizes, depth) of a backbone matters, as it does not for filled
    shapes (docs/efficacy.md). 0: filled shapes.
    """
    check_positive(num_train=num_train, num_val=num_val, num_heldout=num_heldout)
    check_sizes_and_seed(seed, image_size=image_size)
    check_int('stroke', stroke, minimum=0)
    params = {'num_train': num_train, 'num_val': num_val, 'num_heldout': num_heldout,
              'image_size': image_size, 'seed': seed}
    if stroke:  # recorded only when set: filled data keeps the manifest it always had
        params['stroke'] = stroke
    return generate(out_dir, 'coco', params, _write_coco)


class CocoToyData(ToyDataLayout):
    help = 'COCO-format detection data (square, disc)'

    @staticmethod
    def add_arguments(parser):
        parser.add_argument('--num-train', type=int, default=64)
        parser.add_argument('--num-val', type=int, default=16)
        parser.add_argument('--num-heldout', type=int, default=16)
        parser.add_argument('--image-size', type=int, default=128)
        parser.add_argument('--seed', type=int, default=0)
        parser.add_argument('--stroke', type=int, default=0,
                            help='draw the shapes as outlines this many px wide (0: filled)')

    @staticmethod
    def make(args):
        return make_coco(args.out_dir, args.num_train, args.num_val, args.num_heldout,
                         args.image_size, args.seed, args.stroke)


# --- ImageNet (ImageFolder) layout ---

def _write_imagenet(out: Path, num_classes: int, per_class: int, num_val_per_class: int,
                    image_size: int, seed: int) -> None:
    for split, count in zip(SPLITS, (per_class, num_val_per_class)):
        for class_index, name in enumerate(list(SHAPES)[:num_classes]):
            folder = out / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                rng = image_rng(seed, SPLITS.index(split), class_index, index)
                shape = make_shape(name, sample_box(rng, image_size), rng, image_size)
                image = render(rng, image_size, image_size, [shape])
                save_png(image, folder / f'{index + 1:06d}.png')


def make_imagenet(out_dir, num_classes: int = 4, per_class: int = 32,
                  num_val_per_class: int = 8, image_size: int = 64, seed: int = 0) -> Path:
    """Writes (or finds) an ImageFolder tree with one shape class per folder."""
    check_positive(per_class=per_class, num_val_per_class=num_val_per_class)
    if not isinstance(num_classes, int) or not 2 <= num_classes <= len(SHAPES):
        raise NasError(f'num_classes must be between 2 and {len(SHAPES)} '
                       f'({", ".join(SHAPES)}), got {num_classes!r}')
    check_sizes_and_seed(seed, image_size=image_size)
    params = {'num_classes': num_classes, 'per_class': per_class,
              'num_val_per_class': num_val_per_class, 'image_size': image_size, 'seed': seed}
    return generate(out_dir, 'imagenet', params, _write_imagenet)


class ImageNetToyData(ToyDataLayout):
    help = 'ImageFolder classification data'

    @staticmethod
    def add_arguments(parser):
        parser.add_argument('--num-classes', type=int, default=4)
        parser.add_argument('--per-class', type=int, default=32)
        parser.add_argument('--num-val-per-class', type=int, default=8)
        parser.add_argument('--image-size', type=int, default=64)
        parser.add_argument('--seed', type=int, default=0)

    @staticmethod
    def make(args):
        return make_imagenet(args.out_dir, args.num_classes, args.per_class,
                             args.num_val_per_class, args.image_size, args.seed)
