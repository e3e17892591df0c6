"""A deterministic train / held-out split of a COCO annotation file.

An architecture search must rank its candidates on images it did not train
on, and must not rank them on the split that reports the final result
(val2017), or the reported numbers are tuned on the test data. DetNAS's
official code ranks on a split held out from its training data; here
``tools/split_coco.py`` cuts one from train2017.

Which images are held out depends only on the seed and the image ids: each
image gets a sha256 hash of ``"<seed>:<id>"`` and the N images with the
lowest hashes are held out. So the split does not depend on the order of the
file or on Python's random module, and a larger N holds out a superset of a
smaller one's images.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from nas_tasks.errors import NasError
from nas_tasks.io import atomic_write_text, to_json

TRAIN_SUFFIX = '_search_train'
HELD_OUT_SUFFIX = '_search_heldout'


@dataclass(frozen=True)
class SplitFiles:
    """Where a split was written, and how many images each part holds."""

    train: Path
    held_out: Path
    num_train: int
    num_held_out: int


def split_paths(ann_file: str | os.PathLike, out_dir: str | os.PathLike | None = None
                ) -> tuple[Path, Path]:
    """``(train, held_out)`` paths for the parts of ``ann_file``, e.g.
    ``instances_train2017_search_train.json`` and ``..._search_heldout.json``."""
    ann_file = Path(ann_file)
    folder = Path(out_dir) if out_dir is not None else ann_file.parent
    return (folder / f'{ann_file.stem}{TRAIN_SUFFIX}.json',
            folder / f'{ann_file.stem}{HELD_OUT_SUFFIX}.json')


def load_coco(ann_file: str | os.PathLike) -> dict:
    """The annotation file as a dict; one clear line if it is missing or not COCO JSON."""
    try:
        with open(ann_file, encoding='utf-8') as f:
            coco = json.load(f)
    except FileNotFoundError:
        raise NasError(f'annotation file not found: {ann_file}') from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise NasError(f'cannot read {ann_file} as JSON: {error}') from None
    if not isinstance(coco, dict):
        raise NasError(f'{ann_file} is not a COCO annotation file: its JSON is not an object')
    for key in ('images', 'annotations', 'categories'):
        if not isinstance(coco.get(key), list):
            raise NasError(f"{ann_file} is not a COCO annotation file: it has no '{key}' list")
    if not all(isinstance(image, dict) and 'id' in image for image in coco['images']):
        raise NasError(f"{ann_file} is not a COCO annotation file: an image has no 'id'")
    return coco


def held_out_count(held_out: int | float, num_images: int) -> int:
    """Images to hold out: ``held_out`` itself (an int) or that fraction of ``num_images``.

    Both parts must keep at least one image.
    """
    if isinstance(held_out, float):
        if not 0.0 < held_out < 1.0:
            raise NasError(f'--held-out fraction must lie in (0, 1), got {held_out}')
        count = round(held_out * num_images)
    else:
        count = held_out
    if not 0 < count < num_images:
        raise NasError(f'cannot hold out {count} of {num_images} images: each part needs at '
                       f'least one image (use 1..{num_images - 1} or a fraction in (0, 1))')
    return count


def held_out_ids(image_ids: list, count: int, seed: int) -> set:
    """The ``count`` image ids whose seeded hashes are lowest (see the module docstring)."""
    def rank(image_id) -> str:
        return hashlib.sha256(f'{seed}:{image_id}'.encode()).hexdigest()
    return set(sorted(image_ids, key=rank)[:count])


def split_coco(coco: dict, held_out: set) -> tuple[dict, dict]:
    """``(train, held_out)`` COCO dicts: each image and its annotations go to one part.

    Every other top-level entry (categories, info, licenses, ...) is kept in
    both; images and annotations keep their order.
    """
    known_ids = {image['id'] for image in coco['images']}
    for annotation in coco['annotations']:
        if annotation.get('image_id') not in known_ids:
            raise NasError(f"annotation {annotation.get('id')} names image_id "
                           f"{annotation.get('image_id')}, which is not among the images")

    def part(keep) -> dict:
        return {**coco,
                'images': [image for image in coco['images'] if keep(image['id'])],
                'annotations': [ann for ann in coco['annotations'] if keep(ann['image_id'])]}

    return part(lambda image_id: image_id not in held_out), part(lambda image_id: image_id in held_out)


def write_split(ann_file: str | os.PathLike, held_out: int | float, seed: int,
                out_dir: str | os.PathLike | None = None) -> SplitFiles:
    """Split ``ann_file`` and write both parts; the same arguments give byte-identical files."""
    coco = load_coco(ann_file)
    image_ids = [image['id'] for image in coco['images']]
    if len(set(image_ids)) != len(image_ids):
        raise NasError(f'{ann_file} lists an image id more than once')
    chosen = held_out_ids(image_ids, held_out_count(held_out, len(image_ids)), seed)
    train, held = split_coco(coco, chosen)
    train_path, held_out_path = split_paths(ann_file, out_dir)
    for path, part in ((train_path, train), (held_out_path, held)):
        # Compact, as COCO's own files are: atomic_write_json's indentation would
        # put every polygon coordinate on its own line and multiply the size.
        atomic_write_text(path, to_json(part, separators=(',', ':')) + '\n')
    return SplitFiles(train_path, held_out_path, len(train['images']), len(held['images']))
