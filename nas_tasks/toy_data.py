"""The drawing library behind the small synthetic datasets for smoke tests, tutorials and CI.

The core draws and saves; each task package writes its own layouts with it
and declares each as an entry point of the ``nas_tasks.toy_data`` group
(pyproject.toml), which is how ``tools/make_toy_data.py <layout>`` finds them
without importing any task (:func:`nas_tasks.modules.toy_data_layouts`).

Here: shapes inscribed in boxes, rasterised exactly as pycocotools decodes
them, placed without hiding each other, rendered on a noisy background and
saved as PNG; argument checks; and :func:`generate`, which owns the
``toy_data.json`` manifest.

Output is deterministic: the same arguments give byte-identical files. Every
image draws from its own generator keyed by (seed, split, index), see
:func:`image_rng`, so an image does not depend on how many others are
generated. The manifest, written last, records the parameters; a second call
with the same parameters finds it and leaves the directory untouched.
"""
from __future__ import annotations

import argparse
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
from nas_tasks.validation import check_int, check_positive  # noqa: F401 (check_positive: the layouts')

logger = logging.getLogger(__name__)

MANIFEST_NAME = 'toy_data.json'
# Bump when the drawing changes, so an old dataset is not taken for a new one.
GENERATOR_VERSION = 1

SPLITS = ('train', 'val')
MIN_IMAGE_SIZE = 32
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


def clipped_box(x: int, y: int, w: int, h: int, height: int, width: int) -> Box:
    """The part of a box inside the image, at least one pixel each way."""
    x0, y0 = min(max(x, 0), width - 1), min(max(y, 0), height - 1)
    x1, y1 = max(min(x + w, width), x0 + 1), max(min(y + h, height), y0 + 1)
    return Box(x0, y0, x1 - x0, y1 - y0)


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


# Order matters: the ImageNet layout takes the first ``num_classes``.
SHAPES: dict[str, Callable[[Box], list[float]]] = {
    'square': _square,
    'disc': _disc,
    'triangle': _triangle,
    'cross': _cross,
    'diamond': _diamond,
    'star': _star,
}


def polygon(kind: str, box: Box) -> list[float]:
    """The ``kind`` shape inscribed in ``box``, rounded to 2 decimals as COCO files store it."""
    return [round(float(v), 2) for v in SHAPES[kind](box)]


# --- drawing ---

def image_rng(seed: int, *key: int) -> np.random.Generator:
    """The generator of one image, keyed by e.g. (split index, image index)."""
    return np.random.Generator(np.random.PCG64([seed, *key]))


def size_range(image_size: int) -> tuple[int, int]:
    """Object side lengths: 32..64 px at 128 px, scaled with the image."""
    low = round(32 * image_size / 128)
    return low, max(low, round(64 * image_size / 128))


def rasterize(points: list[float], height: int, width: int) -> np.ndarray:
    # pycocotools' rasteriser, so the mask is exactly what COCO.annToMask decodes.
    rle = mask_utils.merge(mask_utils.frPyObjects([points], height, width))
    return mask_utils.decode(rle).astype(bool)


def saturated_colour(rng: np.random.Generator) -> np.ndarray:
    hue, sat, val = rng.uniform(0, 1), rng.uniform(0.75, 1), rng.uniform(0.75, 1)
    return np.array(colorsys.hsv_to_rgb(hue, sat, val)) * 255


def sample_box(rng: np.random.Generator, image_size: int) -> Box:
    """A box of :func:`size_range` sides, aspect 3:4..4:3, inside a square image."""
    low, high = size_range(image_size)
    w = int(rng.integers(low, high + 1))
    aspect = math.exp(rng.uniform(math.log(0.75), math.log(4 / 3)))
    h = int(np.clip(round(w * aspect), low, high))
    x = int(rng.integers(0, image_size - w + 1))
    y = int(rng.integers(0, image_size - h + 1))
    return Box(x, y, w, h)


def make_shape(name: str, box: Box, rng: np.random.Generator, image_size: int) -> Shape:
    """A ``name`` shape in ``box`` of a square image, in a random saturated colour."""
    points = polygon(name, box)
    return Shape(name, points, saturated_colour(rng), rasterize(points, image_size, image_size))


def try_place(shapes: list[Shape], boxes: list[Box], name: str,
              rng: np.random.Generator, image_size: int) -> bool:
    """Adds one ``name`` shape on top of ``shapes``; False if no placement fits."""
    for _ in range(PLACEMENT_TRIES):
        box = sample_box(rng, image_size)
        if any(box.iou(other) > MAX_IOU for other in boxes):
            continue
        shape = make_shape(name, box, rng, image_size)
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


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A greyish base with a tint and a smooth gradient in a random direction."""
    base = rng.uniform(60, 190) + rng.uniform(-15, 15, 3)
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:height, 0:width]
    yy, xx = yy / height - 0.5, xx / width - 0.5
    ramp = xx * math.cos(angle) + yy * math.sin(angle)
    return base + ramp[..., None] * rng.uniform(-60, 60, 3)


def render(rng: np.random.Generator, height: int, width: int,
           shapes: list[Shape], stroke: int = 0) -> np.ndarray:
    """An RGB uint8 image: the background, then ``shapes`` back to front, then noise.

    ``stroke`` > 0 draws each shape as an opaque outline ``stroke`` px wide
    whose inside is the background (it still hides what lies behind it).
    """
    background = _background(rng, height, width)
    image = background.copy()
    for shape in shapes:
        image[shape.mask] = shape.colour
        if stroke:
            from scipy import ndimage  # only outlines need it
            inside = ndimage.binary_erosion(shape.mask, iterations=stroke)
            image[inside] = background[inside]
    image += rng.normal(0, NOISE_STD, image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


# --- atomic writing ---

def save_png(array: np.ndarray, path: Path) -> None:
    """Writes a uint8 array as PNG (H x W x 3: RGB, H x W: greyscale) atomically."""
    atomic_write(path, lambda f: Image.fromarray(array).save(f, format='PNG'))


# --- argument checks ---

def check_sizes_and_seed(seed: int, **sizes: int) -> None:
    """Image sizes of at least :data:`MIN_IMAGE_SIZE` pixels and a non-negative seed."""
    for name, size in sizes.items():
        check_int(name, size, MIN_IMAGE_SIZE)
    check_int('seed', seed, minimum=0)


# --- the manifest ---

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


def generate(out_dir, layout: str, params: dict, write: Callable[..., None]) -> Path:
    """Runs ``write(out, **params)`` into ``out_dir`` unless it already holds this dataset.

    Checked arguments go in ``params``: the manifest records them, and a
    directory holding anything else is refused rather than overwritten.
    """
    out = Path(out_dir)
    manifest = {'layout': layout, 'version': GENERATOR_VERSION, 'params': params}
    if _already_present(out, manifest):
        logger.info('toy data already present at %s', out)
        return out
    out.mkdir(parents=True, exist_ok=True)
    write(out, **params)
    # Written last: a manifest means the dataset is complete.
    atomic_write_json(out / MANIFEST_NAME, manifest)
    logger.info('wrote %s toy data to %s', layout, out)
    return out


# --- the command line ---

class ToyDataLayout:
    """One ``tools/make_toy_data.py <name> OUT_DIR [options]`` command.

    A task declares a subclass under the layout's name in the ``nas_tasks.toy_data``
    entry-point group; the tool adds the ``out_dir`` argument itself.
    """

    help = ''

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        """Adds the layout's options (``--num-train`` and so on)."""
        raise NotImplementedError

    @staticmethod
    def make(args: argparse.Namespace) -> Path:
        """Writes (or finds) the data that the parsed ``args`` ask for."""
        raise NotImplementedError
