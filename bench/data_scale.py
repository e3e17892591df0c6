"""Annotations at COCO's size: parses, seconds and peak memory, before and after parse-once.

Writes a synthetic COCO annotation file with train2017's counts (118,287
images, 860,001 boxes with small polygons, 80 categories last, as COCO's own
file; an empty image folder: only annotation parsing is measured) and measures, side
by side in one run:

* a NAS-FPN proxy search of N candidates: each candidate's Runner builds its
  training dataloader. Before: from the dataset config, a parse each time
  (what every proxy Runner did). After: from ``parsed_once(config)``, as
  ``ProxyDetectionEstimator`` now does.
* a differentiable search's datasets: the training split and its two halves.
  Before: the split, then each half built again from the config with
  ``indices=`` (the old DifferentiableSearchTask code, kept here). After:
  ``DifferentiableSearchTask.build_dataset`` and ``halves`` as they are.
* the class-count pre-flight check of the file. Before: ``json.load`` of the
  whole file (the old check). After: ``config_checks.dataset_classes``.

Each measurement runs in a fresh process of its own, so its peak is its own:
the growth of the peak RSS over the RSS before it started (after imports;
0 when it stayed below the peak that the imports reached).

    python bench/data_scale.py [--candidates 4] [--images 118287] [--boxes 860001]
"""
import argparse
import contextlib
import copy
import gc
import io
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / 'bench'))

from auto_deeplab import current_rss_bytes, peak_rss_bytes  # noqa: E402
from machine import describe_machine  # noqa: E402

TRAIN2017_IMAGES, TRAIN2017_BOXES = 118_287, 860_001
ANN_FILE = 'annotations/instances_train2017.json'
# What each measurement runs: (what is measured, before or after).
MEASUREMENTS = [('proxy', 'before'), ('proxy', 'after'), ('differentiable', 'before'),
                ('differentiable', 'after'), ('class_check', 'before'), ('class_check', 'after')]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--candidates', type=int, default=4,
                        help='proxy candidates (proxy Runners) of the NAS-FPN measurement')
    parser.add_argument('--images', type=int, default=TRAIN2017_IMAGES)
    parser.add_argument('--boxes', type=int, default=TRAIN2017_BOXES)
    parser.add_argument('--data-root', help='an existing synthetic data root (else a temp dir)')
    parser.add_argument('--child', nargs=2, metavar=('WHAT', 'WHEN'), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# -- the synthetic annotation file -------------------------------------------------------
def write_synthetic_coco(path: Path, num_images: int, num_boxes: int, seed: int = 0) -> None:
    """COCO's layout and counts, written in pieces (the file is never whole in memory)."""
    from mmdet.datasets import CocoDataset

    rng = random.Random(seed)
    classes = CocoDataset.METAINFO['classes']
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'w') as f:
        f.write('{"info": {"description": "synthetic, train2017 counts"}, "licenses": [],\n'
                '"images": [')
        f.write(',\n'.join(f'{{"id": {i + 1}, "file_name": "{i + 1:012d}.jpg", "height": 480, '
                           f'"width": 640, "license": 1}}' for i in range(num_images)))
        f.write('],\n"annotations": [')
        for start in range(0, num_boxes, 100_000):
            rows = []
            for box_id in range(start + 1, min(start + 100_000, num_boxes) + 1):
                x, y = rng.uniform(0, 560), rng.uniform(0, 400)
                w, h = rng.uniform(8, 80), rng.uniform(8, 80)
                polygon = [x, y, x + w, y, x + w, y + h, x + w / 2, y + h, x, y + h]
                rows.append(f'{{"id": {box_id}, "image_id": {rng.randint(1, num_images)}, '
                            f'"category_id": {rng.randint(1, len(classes))}, '
                            f'"bbox": [{x:.2f}, {y:.2f}, {w:.2f}, {h:.2f}], "area": {w * h:.2f}, '
                            f'"iscrowd": 0, "segmentation": [[{", ".join(f"{v:.2f}" for v in polygon)}]]}}')
            f.write((',\n' if start else '') + ',\n'.join(rows))
        f.write('],\n"categories": [')
        f.write(', '.join(f'{{"id": {i + 1}, "name": "{name}", "supercategory": "thing"}}'
                          for i, name in enumerate(classes)))
        f.write(']}\n')


def dataset_cfg(data_root: str) -> dict:
    """mmdet's COCO training dataset, as in its coco_detection base config."""
    return dict(type='CocoDataset', data_root=data_root, ann_file=ANN_FILE,
                data_prefix=dict(img='train2017/'), filter_cfg=dict(filter_empty_gt=True, min_size=32),
                pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
                          dict(type='PackDetInputs')])


# -- what is measured -----------------------------------------------------------------------
def proxy_candidates(data_root: str, when: str, candidates: int) -> None:
    """Each candidate's proxy Runner builds its training dataloader, then lets it go."""
    from mmengine.runner import Runner

    from nas_tasks.built_datasets import parsed_once
    cfg = dataset_cfg(data_root)
    for _ in range(candidates):
        loader_cfg = dict(batch_size=2, num_workers=0, sampler=dict(type='InfiniteSampler'),
                          dataset=cfg if when == 'before' else parsed_once(cfg))
        loader = Runner.build_dataloader(loader_cfg, seed=0)
        assert len(loader.dataset) > 0
        del loader
        gc.collect()


class BenchSearch:
    """A differentiable task that only builds its data (DifferentiableSearchTask's own code)."""

    @staticmethod
    def create(data_root: str):
        from mmengine.config import Config

        from nas_tasks.differentiable.task import DifferentiableSearchTask

        class DataOnlySearch(DifferentiableSearchTask):
            score_name, default_scope = 'coco/bbox_mAP', 'mmdet'

        config = Config(dict(train_dataloader=dict(dataset=dataset_cfg(data_root)),
                             val_dataloader=dict(dataset=dataset_cfg(data_root)),
                             val_evaluator=dict(type='CocoMetric')))
        return DataOnlySearch(config, trainer={})


def differentiable_halves(data_root: str, when: str) -> None:
    """The training split and its two halves, alive together as in the task's _run."""
    import torch

    task = BenchSearch.create(data_root)
    train_set = task.build_dataset('train')
    if when == 'after':
        halves = task.halves(train_set)
    else:  # the old code: the config built again for each half, with indices=
        size = len(train_set)
        num_arch = math.floor(size * task.arch_fraction + 0.5)
        order = torch.randperm(size, generator=torch.Generator().manual_seed(task.seed)).tolist()
        halves = tuple(task._build_dataset(dict(copy.deepcopy(dataset_cfg(data_root)), indices=part))
                       for part in (order[:size - num_arch], order[size - num_arch:]))
    assert len(halves[0]) + len(halves[1]) == len(train_set)


def class_check(data_root: str, when: str) -> None:
    path = os.path.join(data_root, ANN_FILE)
    if when == 'before':  # the old check: the whole file
        with open(path, encoding='utf-8') as f:
            names = [c['name'] for c in json.load(f)['categories']]
        count = len(names)
    else:
        from nas_tasks.config_checks import dataset_classes
        count = dataset_classes(dataset_cfg(data_root), 'train_dataloader.dataset', 'mmdet').count
    assert count == 80, count


def measure(what: str, when: str, data_root: str, candidates: int) -> dict:
    """Runs one measurement in this process; parses counted by pycocotools' COCO(path)."""
    import pycocotools.coco
    from mmengine.registry import DefaultScope

    import detection  # noqa: F401  (registers mmdet's modules)
    from nas_tasks.modules import register_all_modules
    register_all_modules()
    parses = []
    coco_init = pycocotools.coco.COCO.__init__

    def counting_init(coco, annotation_file=None):
        if annotation_file is not None:
            parses.append(annotation_file)
        coco_init(coco, annotation_file)

    pycocotools.coco.COCO.__init__ = counting_init
    gc.collect()
    before = current_rss_bytes()
    start = time.perf_counter()
    with DefaultScope.overwrite_default_scope('mmdet'), contextlib.redirect_stdout(io.StringIO()):
        if what == 'proxy':
            proxy_candidates(data_root, when, candidates)
        elif what == 'differentiable':
            differentiable_halves(data_root, when)
        else:
            class_check(data_root, when)
    seconds = time.perf_counter() - start
    # The class check parses JSON without pycocotools: one whole-file parse before, none after.
    count = len(parses) if what != 'class_check' else int(when == 'before')
    # 0 when nothing outgrew the peak that the imports had already reached.
    return dict(what=what, when=when, parses=count, seconds=seconds,
                peak_mb=max(0, peak_rss_bytes() - before) / 2 ** 20)


def run_child(what: str, when: str, data_root: str, candidates: int) -> dict:
    command = [sys.executable, __file__, '--child', what, when, '--data-root', data_root,
               '--candidates', str(candidates)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS='1'))
    if result.returncode != 0:
        raise SystemExit(f'{what} {when} failed:\n{result.stderr[-3000:]}')
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child:
        what, when = args.child
        print(json.dumps(measure(what, when, args.data_root, args.candidates)))
        return
    print(describe_machine())
    with tempfile.TemporaryDirectory() as tmp:
        data_root = args.data_root or f'{tmp}/'
        path = Path(data_root) / ANN_FILE
        if not path.is_file():
            start = time.perf_counter()
            write_synthetic_coco(path, args.images, args.boxes)
            (Path(data_root) / 'train2017').mkdir(exist_ok=True)  # no images: none is read
            print(f'wrote {path}: {args.images:,} images, {args.boxes:,} boxes, '
                  f'{path.stat().st_size / 2 ** 20:.0f} MB in {time.perf_counter() - start:.0f} s')
        rows = {(what, when): run_child(what, when, data_root, args.candidates)
                for what, when in MEASUREMENTS}
    names = {'proxy': f'NAS-FPN proxy search, {args.candidates} candidates',
             'differentiable': 'differentiable search: split and two halves',
             'class_check': 'class-count check of the file'}
    print('| what | parses before | after | seconds before | after | ratio | '
          'peak MB before | after |')
    print('|---|---|---|---|---|---|---|---|')
    for what, name in names.items():
        old, new = rows[(what, 'before')], rows[(what, 'after')]
        print(f"| {name} | {old['parses']} | {new['parses']} | {old['seconds']:.2f} | "
              f"{new['seconds']:.2f} | {old['seconds'] / max(new['seconds'], 1e-9):.1f}x | "
              f"{old['peak_mb']:.0f} | {new['peak_mb']:.0f} |")


if __name__ == '__main__':
    main()
