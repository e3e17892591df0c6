"""Toy data of the segmentation tasks, drawn with :mod:`nas_tasks.toy_data`.

``make_cityscapes`` writes street scenes in the Cityscapes layout and file
names (``leftImg8bit/``, ``gtFine/`` with ``*_labelIds.png`` and the
``*_labelTrainIds.png`` that :mod:`segmentation.cityscapes` converts them
to); :class:`CityscapesToyData` is the ``cityscapes`` command of
``tools/make_toy_data.py`` (an entry point of ``nas_tasks.toy_data`` in pyproject.toml).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from nas_tasks.data_paths import register_data_hint
from nas_tasks.errors import NasError
from nas_tasks.toy_data import (SPLITS, Box, Shape, ToyDataLayout, check_positive,
                                check_sizes_and_seed, clipped_box, generate, image_rng, polygon,
                                rasterize, render, saturated_colour, save_png)
from segmentation.cityscapes import (LABEL_IDS_SUFFIX, NAME_TO_LABEL, TRAIN_IDS_SUFFIX,
                                     convert_gtfine)

CITYSCAPES_CITIES = {'train': ('aachen', 'bremen'), 'val': ('frankfurt',)}
# Every gtFine-annotated Cityscapes image is frame 19 of its sequence.
CITYSCAPES_FRAME = 19
CLASS_COLOUR_JITTER = 20.0

register_data_hint(
    'CityscapesDataset',
    'generate the toy set with: python tools/make_toy_data.py cityscapes data/toy_cityscapes; '
    'real Cityscapes is never downloaded: get leftImg8bit and gtFine from cityscapes-dataset.com',
    write_seg_maps=(TRAIN_IDS_SUFFIX, 'python tools/convert_cityscapes.py'))


def cityscapes_name(split: str, index: int) -> tuple[str, str]:
    """(city, ``<city>_<seq:06d>_<frame:06d>``) of image ``index``: cities take turns."""
    cities = CITYSCAPES_CITIES[split]
    city = cities[index % len(cities)]
    return city, f'{city}_{index // len(cities):06d}_{CITYSCAPES_FRAME:06d}'


def _street_regions(rng: np.random.Generator, height: int,
                    width: int) -> list[tuple[str, str, Box]]:
    """A street scene back to front, as (Cityscapes label, shape, box) triples.

    Sky on top, a skyline of buildings and vegetation, a sidewalk, the road,
    poles with traffic signs, cars and people standing on the ground (nearer
    ones in front), some unlabeled clutter and the ego vehicle's bonnet at the
    bottom, so that every image holds ignored (255) pixels.
    """
    def box(x, y, w, h):
        return clipped_box(int(x), int(y), int(w), int(h), height, width)

    kerb = round(height * rng.uniform(0.50, 0.58))
    road_top = kerb + max(2, round(height * rng.uniform(0.06, 0.10)))
    ego_top = height - max(2, round(height * rng.uniform(0.06, 0.12)))
    regions = [('sky', 'square', box(0, 0, width, kerb))]
    x = 0
    while x < width:
        w = int(rng.integers(max(1, width // 8), max(2, width // 3) + 1))
        top = round(height * rng.uniform(0.08, 0.40))
        label = 'building' if rng.uniform() < 0.65 else 'vegetation'
        regions.append((label, 'square', box(x, top, w, kerb - top)))
        x += w
    regions += [('sidewalk', 'square', box(0, kerb, width, road_top - kerb)),
                ('road', 'square', box(0, road_top, width, ego_top - road_top))]
    for _ in range(int(rng.integers(0, 3))):
        pole_width, top = max(1, width // 64), round(height * rng.uniform(0.15, 0.30))
        x = int(rng.integers(0, width - pole_width + 1))
        side = max(3, round(height * rng.uniform(0.08, 0.12)))
        regions += [('pole', 'square', box(x, top, pole_width, road_top - top)),
                    ('traffic sign', ('triangle', 'disc', 'diamond')[int(rng.integers(0, 3))],
                     box(x + pole_width // 2 - side // 2, top - side // 2, side, side))]
    if rng.uniform() < 0.5:
        side = max(3, round(height * rng.uniform(0.10, 0.20)))
        regions.append(('unlabeled', ('star', 'cross')[int(rng.integers(0, 2))],
                        box(rng.integers(0, width), rng.integers(0, ego_top), side, side)))
    standing = []  # (bottom row, label, shape, box)

    def stand(label, kind, w, h, lowest_bottom):
        bottom = int(rng.integers(lowest_bottom, ego_top + 2))
        x = int(rng.integers(0, width - w + 1))
        standing.append((bottom, label, kind, box(x, bottom - h, w, h)))

    for _ in range(int(rng.integers(1, 4))):
        w = round(width * rng.uniform(1 / 6, 1 / 3.5))
        stand('car', 'square', w, max(2, round(w * rng.uniform(0.45, 0.65))), road_top + 2)
    for _ in range(int(rng.integers(0, 4))):
        h = max(4, round(height * rng.uniform(0.18, 0.30)))
        stand('person', 'disc', max(2, round(h * rng.uniform(0.30, 0.45))), h, kerb + 1)
    # Nearer objects (lower in the image) stand in front.
    regions += [item[1:] for item in sorted(standing, key=lambda item: item[0])]
    regions.append(('ego vehicle', 'square', box(0, ego_top, width, height - ego_top)))
    return regions


def _street_scene(rng: np.random.Generator, height: int,
                  width: int) -> tuple[np.ndarray, np.ndarray]:
    """An RGB street image and its labelIds map.

    Each class is painted in its Cityscapes colour, shifted a little per
    image, plus pixel noise; the unlabeled clutter takes a random colour.
    """
    regions = _street_regions(rng, height, width)
    jitter = {name: rng.uniform(-CLASS_COLOUR_JITTER, CLASS_COLOUR_JITTER, 3)
              for name in sorted({name for name, _, _ in regions})}
    label_ids = np.zeros((height, width), np.uint8)
    shapes = []
    for name, kind, region in regions:
        points = polygon(kind, region)
        colour = (saturated_colour(rng) if name == 'unlabeled'
                  else np.array(NAME_TO_LABEL[name].color, float) + jitter[name])
        shape = Shape(name, points, colour, rasterize(points, height, width))
        label_ids[shape.mask] = NAME_TO_LABEL[name].id
        shapes.append(shape)
    return render(rng, height, width, shapes), label_ids


def _write_cityscapes(out: Path, num_train: int, num_val: int, height: int, width: int,
                      seed: int) -> None:
    for split, count in zip(SPLITS, (num_train, num_val)):
        for index in range(count):
            city, stem = cityscapes_name(split, index)
            rng = image_rng(seed, SPLITS.index(split), index)
            image, label_ids = _street_scene(rng, height, width)
            for folder, array, suffix in (('leftImg8bit', image, '_leftImg8bit.png'),
                                          ('gtFine', label_ids, LABEL_IDS_SUFFIX)):
                (out / folder / split / city).mkdir(parents=True, exist_ok=True)
                save_png(array, out / folder / split / city / f'{stem}{suffix}')
    convert_gtfine(out)


def make_cityscapes(out_dir, num_train: int = 16, num_val: int = 8,
                    image_size: tuple[int, int] = (64, 128), seed: int = 0) -> Path:
    """Writes (or finds) Cityscapes-layout street scenes; ``image_size`` is (height, width).

    ``leftImg8bit/{train,val}/<city>/<city>_<seq>_000019_leftImg8bit.png`` and
    ``gtFine/...`` with ``_gtFine_labelIds.png`` and ``_gtFine_labelTrainIds.png``;
    train images come from aachen and bremen, val images from frankfurt.
    """
    check_positive(num_train=num_train, num_val=num_val)
    if not isinstance(image_size, (tuple, list)) or len(image_size) != 2:
        raise NasError(f'image_size must be (height, width), got {image_size!r}')
    height, width = image_size
    check_sizes_and_seed(seed, height=height, width=width)
    params = {'num_train': num_train, 'num_val': num_val, 'height': height, 'width': width,
              'seed': seed}
    return generate(out_dir, 'cityscapes', params, _write_cityscapes)


class CityscapesToyData(ToyDataLayout):
    help = 'street scenes in the Cityscapes layout (leftImg8bit/, gtFine/)'

    @staticmethod
    def add_arguments(parser):
        parser.add_argument('--num-train', type=int, default=16)
        parser.add_argument('--num-val', type=int, default=8)
        parser.add_argument('--height', type=int, default=64)
        parser.add_argument('--width', type=int, default=128)
        parser.add_argument('--seed', type=int, default=0)

    @staticmethod
    def make(args):
        return make_cityscapes(args.out_dir, args.num_train, args.num_val,
                               (args.height, args.width), args.seed)
