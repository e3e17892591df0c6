"""Cityscapes labels and the labelIds -> labelTrainIds conversion, without cityscapesscripts.

``LABELS`` is the official table of cityscapesscripts' ``helpers/labels.py``
(35 labels). mmseg's ``CityscapesDataset`` reads ``*_gtFine_labelTrainIds.png``
maps: the 19 evaluated classes as 0..18 and everything else as 255, which
the loss and ``IoUMetric`` ignore. :func:`convert_gtfine` writes those maps
next to the ``*_gtFine_labelIds.png`` files that the gtFine download holds
(mmseg's own converter needs cityscapesscripts and the polygon JSON files).
"""
from __future__ import annotations

import logging
import multiprocessing
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from nas_tasks.errors import NasError
from nas_tasks.toy_data import save_png
from nas_tasks.validation import check_int

logger = logging.getLogger(__name__)

IGNORE_INDEX = 255
LABEL_IDS_SUFFIX = '_gtFine_labelIds.png'
TRAIN_IDS_SUFFIX = '_gtFine_labelTrainIds.png'


class Label(NamedTuple):
    """One row of the official table; the field names are cityscapesscripts' own."""

    name: str
    id: int  # in *_labelIds.png; -1: not in the label images (license plate)
    trainId: int  # 0..18 for the evaluated classes; 255 or -1: ignored
    category: str
    categoryId: int
    hasInstances: bool
    ignoreInEval: bool
    color: tuple[int, int, int]


LABELS: tuple[Label, ...] = (
    #     name                   id  trainId  category       catId  instances  ignore  color
    Label('unlabeled',             0, 255, 'void',         0, False, True, (0, 0, 0)),
    Label('ego vehicle',           1, 255, 'void',         0, False, True, (0, 0, 0)),
    Label('rectification border',  2, 255, 'void',         0, False, True, (0, 0, 0)),
    Label('out of roi',            3, 255, 'void',         0, False, True, (0, 0, 0)),
    Label('static',                4, 255, 'void',         0, False, True, (0, 0, 0)),
    Label('dynamic',               5, 255, 'void',         0, False, True, (111, 74, 0)),
    Label('ground',                6, 255, 'void',         0, False, True, (81, 0, 81)),
    Label('road',                  7,   0, 'flat',         1, False, False, (128, 64, 128)),
    Label('sidewalk',              8,   1, 'flat',         1, False, False, (244, 35, 232)),
    Label('parking',               9, 255, 'flat',         1, False, True, (250, 170, 160)),
    Label('rail track',           10, 255, 'flat',         1, False, True, (230, 150, 140)),
    Label('building',             11,   2, 'construction', 2, False, False, (70, 70, 70)),
    Label('wall',                 12,   3, 'construction', 2, False, False, (102, 102, 156)),
    Label('fence',                13,   4, 'construction', 2, False, False, (190, 153, 153)),
    Label('guard rail',           14, 255, 'construction', 2, False, True, (180, 165, 180)),
    Label('bridge',               15, 255, 'construction', 2, False, True, (150, 100, 100)),
    Label('tunnel',               16, 255, 'construction', 2, False, True, (150, 120, 90)),
    Label('pole',                 17,   5, 'object',       3, False, False, (153, 153, 153)),
    Label('polegroup',            18, 255, 'object',       3, False, True, (153, 153, 153)),
    Label('traffic light',        19,   6, 'object',       3, False, False, (250, 170, 30)),
    Label('traffic sign',         20,   7, 'object',       3, False, False, (220, 220, 0)),
    Label('vegetation',           21,   8, 'nature',       4, False, False, (107, 142, 35)),
    Label('terrain',              22,   9, 'nature',       4, False, False, (152, 251, 152)),
    Label('sky',                  23,  10, 'sky',          5, False, False, (70, 130, 180)),
    Label('person',               24,  11, 'human',        6, True, False, (220, 20, 60)),
    Label('rider',                25,  12, 'human',        6, True, False, (255, 0, 0)),
    Label('car',                  26,  13, 'vehicle',      7, True, False, (0, 0, 142)),
    Label('truck',                27,  14, 'vehicle',      7, True, False, (0, 0, 70)),
    Label('bus',                  28,  15, 'vehicle',      7, True, False, (0, 60, 100)),
    Label('caravan',              29, 255, 'vehicle',      7, True, True, (0, 0, 90)),
    Label('trailer',              30, 255, 'vehicle',      7, True, True, (0, 0, 110)),
    Label('train',                31,  16, 'vehicle',      7, True, False, (0, 80, 100)),
    Label('motorcycle',           32,  17, 'vehicle',      7, True, False, (0, 0, 230)),
    Label('bicycle',              33,  18, 'vehicle',      7, True, False, (119, 11, 32)),
    Label('license plate',        -1,  -1, 'vehicle',      7, False, True, (0, 0, 142)),
)

NAME_TO_LABEL = {label.name: label for label in LABELS}
ID_TO_LABEL = {label.id: label for label in LABELS}
TRAIN_LABELS = tuple(sorted((label for label in LABELS if 0 <= label.trainId < IGNORE_INDEX),
                            key=lambda label: label.trainId))
# The 19 classes in trainId order, as mmseg's CityscapesDataset names and colours them.
CLASSES = tuple(label.name for label in TRAIN_LABELS)
PALETTE = tuple(label.color for label in TRAIN_LABELS)
NUM_CLASSES = len(CLASSES)

# labelId -> trainId for every uint8 value; -1 trainIds and unknown ids become 255.
_ID_TO_TRAIN_ID = np.full(256, IGNORE_INDEX, np.uint8)
for _label in LABELS:
    if _label.id >= 0:
        _ID_TO_TRAIN_ID[_label.id] = _label.trainId if _label.trainId >= 0 else IGNORE_INDEX
_ID_TO_TRAIN_ID.flags.writeable = False


class ConversionSummary(NamedTuple):
    converted: int
    skipped: int


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """A labelIds array as a uint8 trainIds array of the same shape; unknown ids -> 255."""
    label_ids = np.asarray(label_ids)
    if not np.issubdtype(label_ids.dtype, np.integer):
        raise TypeError(f'labelIds must be an integer array, got {label_ids.dtype}')
    known = (label_ids >= 0) & (label_ids < _ID_TO_TRAIN_ID.size)
    train_ids = _ID_TO_TRAIN_ID[np.where(known, label_ids, 0)]
    return np.where(known, train_ids, np.uint8(IGNORE_INDEX)).astype(np.uint8)


def train_ids_path(label_ids_path: str | Path) -> Path:
    """``x_gtFine_labelIds.png`` -> ``x_gtFine_labelTrainIds.png`` in the same folder."""
    path = Path(label_ids_path)
    if not path.name.endswith(LABEL_IDS_SUFFIX):
        raise NasError(f'not a Cityscapes labelIds file (*{LABEL_IDS_SUFFIX}): {path}')
    return path.with_name(path.name[:-len(LABEL_IDS_SUFFIX)] + TRAIN_IDS_SUFFIX)


def convert_label_file(label_ids_path: str | Path, overwrite: bool = False) -> bool:
    """Writes the labelTrainIds map of one labelIds PNG; False if it existed and was kept."""
    source = Path(label_ids_path)
    target = train_ids_path(source)
    if target.exists() and not overwrite:
        return False
    try:
        with Image.open(source) as image:
            label_ids = np.asarray(image)
    except OSError as error:
        raise NasError(f'cannot read {source}: {error}') from error
    if label_ids.ndim != 2 or not np.issubdtype(label_ids.dtype, np.integer):
        raise NasError(f'{source} is not a single-channel labelIds image '
                       f'(array of shape {label_ids.shape}, {label_ids.dtype})')
    try:
        save_png(label_ids_to_train_ids(label_ids), target)
    except OSError as error:
        raise NasError(f'cannot write {target}: {error}') from error
    return True


def _convert_forced(label_ids_path: Path) -> bool:
    return convert_label_file(label_ids_path, overwrite=True)


def convert_gtfine(cityscapes_root: str | Path, nproc: int = 1,
                   overwrite: bool = False) -> ConversionSummary:
    """Writes ``*_gtFine_labelTrainIds.png`` next to every ``*_gtFine_labelIds.png``.

    ``cityscapes_root`` holds ``gtFine/`` (``train``, ``val``, ``test``). Each
    map is written atomically; maps already present are kept unless
    ``overwrite``. ``nproc`` > 1 converts in that many worker processes.
    """
    root = Path(cityscapes_root)
    check_int('nproc', nproc)
    if not root.is_dir():
        raise NasError(f'Cityscapes root not found: {root} (it is never downloaded; get gtFine '
                       'and leftImg8bit from cityscapes-dataset.com and point at their folder)')
    gt_dir = root / 'gtFine'
    if not gt_dir.is_dir():
        raise NasError(f'no gtFine folder in {root}; expected {gt_dir}/{{train,val,test}}/<city>/'
                       f'*{LABEL_IDS_SUFFIX}')
    sources = sorted(gt_dir.rglob(f'*{LABEL_IDS_SUFFIX}'))
    if not sources:
        raise NasError(f'no *{LABEL_IDS_SUFFIX} files under {gt_dir}')
    todo = sources if overwrite else [s for s in sources if not train_ids_path(s).exists()]
    workers = min(nproc, len(todo))
    if workers > 1:
        # spawn: forking a process that runs torch threads can deadlock.
        with multiprocessing.get_context('spawn').Pool(workers) as pool:
            chunksize = max(1, len(todo) // (4 * workers))
            list(pool.imap_unordered(_convert_forced, todo, chunksize=chunksize))
    else:
        for source in todo:
            _convert_forced(source)
    summary = ConversionSummary(converted=len(todo), skipped=len(sources) - len(todo))
    logger.info('wrote %d labelTrainIds maps under %s, kept %d already present',
                summary.converted, gt_dir, summary.skipped)
    return summary
