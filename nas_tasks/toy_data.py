"""Small synthetic datasets for smoke tests, tutorials and CI.

Three layouts, all drawn from the same shapes:

* ``make_coco``: COCO-format detection data (``square`` and ``disc``) with
  ``train/``, ``val/`` and ``annotations/instances_{train,val}.json``.
* ``make_imagenet``: a torchvision ``ImageFolder`` tree of one shape per image.
* ``make_cityscapes``: street scenes in the Cityscapes layout and file names
  (``leftImg8bit/``, ``gtFine/`` with ``*_labelIds.png`` and the
  ``*_labelTrainIds.png`` that ``segmentation.cityscapes`` converts them to).

Output is deterministic: the same arguments give byte-identical files. Every
image draws from its own generator keyed by (seed, split, index), so an image
does not depend on how many others are generated. A ``toy_data.json`` manifest,
written last, records the parameters; a second call with the same parameters
finds it and leaves the directory untouched.
"""
from __future__ import annotations

import colorsys
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pycocotools.mask as mask_utils
from PIL import Image

from nas_tasks.errors import NasError
from nas_tasks.io import atomic_write, atomic_write_json

logger = logging.getLogger(__name__)

MANIFEST_NAME = 'toy_data.json'
# Bump when the drawing changes, so an old dataset is not taken for a new one.
GENERATOR_VERSION = 1

COCO_SHAPES = ('square', 'disc')
SPLITS = ('train', 'val')
MIN_IMAGE_SIZE = 32
MAX_OBJECTS = 3
MAX_IOU = 0.3
MIN_VISIBLE_FRACTION = 0.5
PLACEMENT_TRIES = 50
DISC_POINTS = 24
NOISE_STD = 8.0


@dataclass(frozen=True)
class Box:
    """An integer pixel box; polygons on integer corners rasterise exactly."""

    x: int
    y: int
    w: int
    h: int

    def iou(self, other: Box) -> float:
        ix = max(0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        inter = ix * iy
        return inter / (self.w * self.h + other.w * other.h - inter)


@dataclass
class Shape:
    """One drawn object: its polygon, its full mask and what stays visible."""

    name: str
    polygon: list[float]
    colour: np.ndarray
    mask: np.ndarray
    visible: np.ndarray = field(init=False)

    def __post_init__(self):
        self.visible = self.mask.copy()

    @property
    def occluded(self) -> bool:
        return int(self.visible.sum()) < int(self.mask.sum())


# --- polygons, each inscribed in a box, as flat [x0, y0, x1, y1, ...] lists ---

def _ellipse_points(box: Box, count: int, radii=(1.0,), phase=0.0) -> list[float]:
    """``count`` points on the box's inscribed ellipse; radii cycle per point."""
    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    points = []
    for k in range(count):
        angle = phase + 2 * math.pi * k / count
        r = radii[k % len(radii)]
        points += [cx + r * box.w / 2 * math.cos(angle), cy + r * box.h / 2 * math.sin(angle)]
    return points


def _square(box: Box) -> list[float]:
    x0, y0, x1, y1 = box.x, box.y, box.x + box.w, box.y + box.h
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def _disc(box: Box) -> list[float]:
    return _ellipse_points(box, DISC_POINTS)


def _triangle(box: Box) -> list[float]:
    return [box.x + box.w / 2, box.y, box.x + box.w, box.y + box.h, box.x, box.y + box.h]


def _cross(box: Box) -> list[float]:
    xs = [box.x + box.w * f for f in (0, 1 / 3, 2 / 3, 1)]
    ys = [box.y + box.h * f for f in (0, 1 / 3, 2 / 3, 1)]
    corners = [(1, 0), (2, 0), (2, 1), (3, 1), (3, 2), (2, 2),
               (2, 3), (1, 3), (1, 2), (0, 2), (0, 1), (1, 1)]
    return [v for i, j in corners for v in (xs[i], ys[j])]


def _diamond(box: Box) -> list[float]:
    return _ellipse_points(box, 4, phase=-math.pi / 2)


def _star(box: Box) -> list[float]:
    return _ellipse_points(box, 10, radii=(1.0, 0.45), phase=-math.pi / 2)


# Order matters: make_imagenet takes the first ``num_classes``.
SHAPES: dict[str, Callable[[Box], list[float]]] = {
    'square': _square,
    'disc': _disc,
    'triangle': _triangle,
    'cross': _cross,
    'diamond': _diamond,
    'star': _star,
}


# --- drawing ---

def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64([seed, *key]))


def size_range(image_size: int) -> tuple[int, int]:
    """Object side lengths: 32..64 px at 128 px, scaled with the image."""
    low = round(32 * image_size / 128)
    return low, max(low, round(64 * image_size / 128))


def _rasterize(polygon: list[float], height: int, width: int) -> np.ndarray:
    # pycocotools' rasteriser, so the mask is exactly what COCO.annToMask decodes.
    rle = mask_utils.merge(mask_utils.frPyObjects([polygon], height, width))
    return mask_utils.decode(rle).astype(bool)


def _saturated_colour(rng: np.random.Generator) -> np.ndarray:
    hue, sat, val = rng.uniform(0, 1), rng.uniform(0.75, 1), rng.uniform(0.75, 1)
    return np.array(colorsys.hsv_to_rgb(hue, sat, val)) * 255


def _sample_box(rng: np.random.Generator, image_size: int) -> Box:
    low, high = size_range(image_size)
    w = int(rng.integers(low, high + 1))
    aspect = math.exp(rng.uniform(math.log(0.75), math.log(4 / 3)))
    h = int(np.clip(round(w * aspect), low, high))
    x = int(rng.integers(0, image_size - w + 1))
    y = int(rng.integers(0, image_size - h + 1))
    return Box(x, y, w, h)


def _polygon(kind: str, box: Box) -> list[float]:
    return [round(float(v), 2) for v in SHAPES[kind](box)]


def _make_shape(name: str, box: Box, rng: np.random.Generator, image_size: int) -> Shape:
    polygon = _polygon(name, box)
    return Shape(name, polygon, _saturated_colour(rng), _rasterize(polygon, image_size, image_size))


def _try_place(shapes: list[Shape], boxes: list[Box], name: str,
               rng: np.random.Generator, image_size: int) -> bool:
    """Adds one ``name`` shape on top of ``shapes``; False if no placement fits."""
    for _ in range(PLACEMENT_TRIES):
        box = _sample_box(rng, image_size)
        if any(box.iou(other) > MAX_IOU for other in boxes):
            continue
        shape = _make_shape(name, box, rng, image_size)
        remaining = [s.visible & ~shape.mask for s in shapes]
        # Rejecting the newcomer, rather than dropping the covered shape, keeps
        # every object that shows in the image annotated.
        if any(r.sum() < MIN_VISIBLE_FRACTION * s.mask.sum() for r, s in zip(remaining, shapes)):
            continue
        for s, r in zip(shapes, remaining):
            s.visible = r
        shapes.append(shape)
        boxes.append(box)
        return True
    return False


def _scene(rng: np.random.Generator, image_size: int, first: str) -> list[Shape]:
    """1..3 COCO shapes; the first one's category is given so splits hold both."""
    count = int(rng.integers(1, MAX_OBJECTS + 1))
    names = [first] + [COCO_SHAPES[int(i)] for i in rng.integers(0, len(COCO_SHAPES), count - 1)]
    shapes: list[Shape] = []
    boxes: list[Box] = []
    for name in names:
        _try_place(shapes, boxes, name, rng, image_size)
    return shapes


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A greyish base with a tint and a smooth gradient in a random direction."""
    base = rng.uniform(60, 190) + rng.uniform(-15, 15, 3)
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:height, 0:width]
    yy, xx = yy / height - 0.5, xx / width - 0.5
    ramp = xx * math.cos(angle) + yy * math.sin(angle)
    return base + ramp[..., None] * rng.uniform(-60, 60, 3)


def _render(rng: np.random.Generator, height: int, width: int,
            shapes: list[Shape]) -> np.ndarray:
    image = _background(rng, height, width)
    for shape in shapes:
        image[shape.mask] = shape.colour
    image += rng.normal(0, NOISE_STD, image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


# --- atomic writing ---

def save_png(array: np.ndarray, path: Path) -> None:
    """Writes a uint8 array as PNG (H x W x 3: RGB, H x W: greyscale) atomically."""
    atomic_write(path, lambda f: Image.fromarray(array).save(f, format='PNG'))


def _save_json(obj, path: Path) -> None:
    atomic_write_json(path, obj)


# --- COCO layout ---

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


def _write_coco_split(out: Path, split: str, first_id: int, count: int,
                      image_size: int, seed: int) -> None:
    (out / split).mkdir(exist_ok=True)
    images, annotations = [], []
    for index in range(count):
        image_id = first_id + index
        rng = _rng(seed, SPLITS.index(split), index)
        shapes = _scene(rng, image_size, first=COCO_SHAPES[index % len(COCO_SHAPES)])
        file_name = f'{image_id:06d}.png'
        save_png(_render(rng, image_size, image_size, shapes), out / split / file_name)
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
    _save_json(coco, out / 'annotations' / f'instances_{split}.json')


def _write_coco(out: Path, num_train: int, num_val: int, image_size: int, seed: int) -> None:
    # Image ids run on from train into val, so the two splits never share one.
    _write_coco_split(out, 'train', 1, num_train, image_size, seed)
    _write_coco_split(out, 'val', 1 + num_train, num_val, image_size, seed)


# --- ImageNet (ImageFolder) layout ---

def _write_imagenet(out: Path, num_classes: int, per_class: int, num_val_per_class: int,
                    image_size: int, seed: int) -> None:
    for split, count in zip(SPLITS, (per_class, num_val_per_class)):
        for class_index, name in enumerate(list(SHAPES)[:num_classes]):
            folder = out / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                rng = _rng(seed, SPLITS.index(split), class_index, index)
                shape = _make_shape(name, _sample_box(rng, image_size), rng, image_size)
                image = _render(rng, image_size, image_size, [shape])
                save_png(image, folder / f'{index + 1:06d}.png')


# --- Cityscapes layout ---

CITYSCAPES_CITIES = {'train': ('aachen', 'bremen'), 'val': ('frankfurt',)}
# Every gtFine-annotated Cityscapes image is frame 19 of its sequence.
CITYSCAPES_FRAME = 19
CLASS_COLOUR_JITTER = 20.0


def cityscapes_name(split: str, index: int) -> tuple[str, str]:
    """(city, ``<city>_<seq:06d>_<frame:06d>``) of image ``index``: cities take turns."""
    cities = CITYSCAPES_CITIES[split]
    city = cities[index % len(cities)]
    return city, f'{city}_{index // len(cities):06d}_{CITYSCAPES_FRAME:06d}'


def _clipped_box(x: int, y: int, w: int, h: int, height: int, width: int) -> Box:
    """The part of a box inside the image, at least one pixel each way."""
    x0, y0 = min(max(x, 0), width - 1), min(max(y, 0), height - 1)
    x1, y1 = max(min(x + w, width), x0 + 1), max(min(y + h, height), y0 + 1)
    return Box(x0, y0, x1 - x0, y1 - y0)


def _street_regions(rng: np.random.Generator, height: int,
                    width: int) -> list[tuple[str, str, Box]]:
    """A street scene back to front, as (Cityscapes label, shape, box) triples.

    Sky on top, a skyline of buildings and vegetation, a sidewalk, the road,
    poles with traffic signs, cars and people standing on the ground (nearer
    ones in front), some unlabeled clutter and the ego vehicle's bonnet at the
    bottom, so that every image holds ignored (255) pixels.
    """
    def box(x, y, w, h):
        return _clipped_box(int(x), int(y), int(w), int(h), height, width)

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


def _street_scene(rng: np.random.Generator, height: int, width: int,
                  labels: dict) -> tuple[np.ndarray, np.ndarray]:
    """An RGB street image and its labelIds map; ``labels`` maps names to Cityscapes labels.

    Each class is painted in its Cityscapes colour, shifted a little per
    image, plus pixel noise; the unlabeled clutter takes a random colour.
    """
    regions = _street_regions(rng, height, width)
    jitter = {name: rng.uniform(-CLASS_COLOUR_JITTER, CLASS_COLOUR_JITTER, 3)
              for name in sorted({name for name, _, _ in regions})}
    label_ids = np.zeros((height, width), np.uint8)
    shapes = []
    for name, kind, region in regions:
        polygon = _polygon(kind, region)
        colour = (_saturated_colour(rng) if name == 'unlabeled'
                  else np.array(labels[name].color, float) + jitter[name])
        shape = Shape(name, polygon, colour, _rasterize(polygon, height, width))
        label_ids[shape.mask] = labels[name].id
        shapes.append(shape)
    return _render(rng, height, width, shapes), label_ids


def _write_cityscapes(out: Path, num_train: int, num_val: int, height: int, width: int,
                      seed: int) -> None:
    # The label table and its converter belong to the segmentation task package.
    from segmentation.cityscapes import LABEL_IDS_SUFFIX, NAME_TO_LABEL, convert_gtfine

    for split, count in zip(SPLITS, (num_train, num_val)):
        for index in range(count):
            city, stem = cityscapes_name(split, index)
            rng = _rng(seed, SPLITS.index(split), index)
            image, label_ids = _street_scene(rng, height, width, NAME_TO_LABEL)
            for folder, array, suffix in (('leftImg8bit', image, '_leftImg8bit.png'),
                                          ('gtFine', label_ids, LABEL_IDS_SUFFIX)):
                (out / folder / split / city).mkdir(parents=True, exist_ok=True)
                save_png(array, out / folder / split / city / f'{stem}{suffix}')
    convert_gtfine(out)


# --- manifest and the public entry points ---

def _read_manifest(out: Path) -> dict | None:
    try:
        return json.loads((out / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None


def _already_present(out: Path, manifest: dict) -> bool:
    """True if ``out`` holds this exact dataset; raises if it holds anything else."""
    if not out.exists():
        return False
    if not out.is_dir():
        raise NasError(f'{out} exists and is not a directory')
    if not any(out.iterdir()):
        return False
    found = _read_manifest(out)
    if found == manifest:
        return True
    if found is None:
        raise NasError(f'{out} is not empty and holds no toy data; '
                       'remove it or choose another directory')
    raise NasError(f'{out} holds toy data made with other parameters '
                   f'({json.dumps(found, sort_keys=True)}); remove it or choose another directory')


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or value < 1:
            raise NasError(f'{name} must be a positive integer, got {value!r}')


def _check_common(seed: int, **sizes: int) -> None:
    for name, size in sizes.items():
        if not isinstance(size, int) or size < MIN_IMAGE_SIZE:
            raise NasError(f'{name} must be an integer >= {MIN_IMAGE_SIZE}, got {size!r}')
    if not isinstance(seed, int) or seed < 0:
        raise NasError(f'seed must be a non-negative integer, got {seed!r}')


def _generate(out_dir, layout: str, params: dict, write: Callable[..., None]) -> Path:
    out = Path(out_dir)
    manifest = {'layout': layout, 'version': GENERATOR_VERSION, 'params': params}
    if _already_present(out, manifest):
        logger.info('toy data already present at %s', out)
        return out
    out.mkdir(parents=True, exist_ok=True)
    write(out, **params)
    # Written last: a manifest means the dataset is complete.
    _save_json(manifest, out / MANIFEST_NAME)
    logger.info('wrote %s toy data to %s', layout, out)
    return out


def make_coco(out_dir, num_train: int = 64, num_val: int = 16,
              image_size: int = 128, seed: int = 0) -> Path:
    """Writes (or finds) COCO-format ``square``/``disc`` detection data."""
    _check_positive(num_train=num_train, num_val=num_val)
    _check_common(seed, image_size=image_size)
    params = {'num_train': num_train, 'num_val': num_val, 'image_size': image_size, 'seed': seed}
    return _generate(out_dir, 'coco', params, _write_coco)


def make_imagenet(out_dir, num_classes: int = 4, per_class: int = 32,
                  num_val_per_class: int = 8, image_size: int = 64, seed: int = 0) -> Path:
    """Writes (or finds) an ImageFolder tree with one shape class per folder."""
    _check_positive(per_class=per_class, num_val_per_class=num_val_per_class)
    if not isinstance(num_classes, int) or not 2 <= num_classes <= len(SHAPES):
        raise NasError(f'num_classes must be between 2 and {len(SHAPES)} '
                       f'({", ".join(SHAPES)}), got {num_classes!r}')
    _check_common(seed, image_size=image_size)
    params = {'num_classes': num_classes, 'per_class': per_class,
              'num_val_per_class': num_val_per_class, 'image_size': image_size, 'seed': seed}
    return _generate(out_dir, 'imagenet', params, _write_imagenet)


def make_cityscapes(out_dir, num_train: int = 16, num_val: int = 8,
                    image_size: tuple[int, int] = (64, 128), seed: int = 0) -> Path:
    """Writes (or finds) Cityscapes-layout street scenes; ``image_size`` is (height, width).

    ``leftImg8bit/{train,val}/<city>/<city>_<seq>_000019_leftImg8bit.png`` and
    ``gtFine/...`` with ``_gtFine_labelIds.png`` and ``_gtFine_labelTrainIds.png``;
    train images come from aachen and bremen, val images from frankfurt.
    """
    _check_positive(num_train=num_train, num_val=num_val)
    if not isinstance(image_size, (tuple, list)) or len(image_size) != 2:
        raise NasError(f'image_size must be (height, width), got {image_size!r}')
    height, width = image_size
    _check_common(seed, height=height, width=width)
    params = {'num_train': num_train, 'num_val': num_val, 'height': height, 'width': width,
              'seed': seed}
    return _generate(out_dir, 'cityscapes', params, _write_cityscapes)
