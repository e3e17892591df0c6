"""Data at full size is parsed once per process and handed to every consumer.

Parses are counted where they happen: every ``pycocotools`` ``COCO(path)``
(mmdet's CocoDataset and CocoMetric both go through it) and every dataset's
``load_data_list``, by the annotation file they read.
"""
from __future__ import annotations

import collections
import json
import os

import pytest

from conftest import REPO
from search_runs import NAS_FPN_CONFIG


class ParseCounter:
    """Counts COCO(path) constructions and CocoDataset.load_data_list calls by file name."""

    def __init__(self, monkeypatch):
        import pycocotools.coco
        from mmdet.datasets import CocoDataset

        self.coco = collections.Counter()
        self.dataset = collections.Counter()
        coco_init = pycocotools.coco.COCO.__init__
        load_data_list = CocoDataset.load_data_list

        def counting_coco_init(coco, annotation_file=None):
            if annotation_file is not None:
                self.coco[os.path.basename(str(annotation_file))] += 1
            coco_init(coco, annotation_file)

        def counting_load_data_list(dataset):
            self.dataset[os.path.basename(dataset.ann_file)] += 1
            return load_data_list(dataset)

        monkeypatch.setattr(pycocotools.coco.COCO, '__init__', counting_coco_init)
        monkeypatch.setattr(CocoDataset, 'load_data_list', counting_load_data_list)


# -- NAS-FPN: one parse of the training split, whatever the number of candidates ------
def _nas_fpn_parses(toy_coco, work_dir, monkeypatch, num_candidates: int) -> ParseCounter:
    from nas_tasks.built_datasets import forget_parsed_datasets
    from nas_tasks.cli import parse_cfg_options
    from nas_tasks.search import run_search

    forget_parsed_datasets()  # as in a fresh process: nothing parsed yet
    counter = ParseCounter(monkeypatch)
    # One controller step of num_candidates pyramids; 2 proxy iterations each
    # (their scores do not matter here, only what is read to get them).
    options = [f'data_root={toy_coco}/', 'train_cfg.max_iters=2', 'strategy.num_steps=1',
               f'strategy.batch_size={num_candidates}']
    run_search(str(REPO / NAS_FPN_CONFIG), str(work_dir), False, parse_cfg_options(options),
               'none')
    records = [json.loads(line) for line in (work_dir / 'candidates.jsonl').read_text().splitlines()]
    assert len(records) == num_candidates
    return counter


@pytest.mark.slow  # two NAS-FPN searches, of 1 and 2 proxy trainings: about a minute
def test_nas_fpn_search_parses_its_training_annotations_once_whatever_its_candidates(
        toy_coco, tmp_path, monkeypatch):
    one = _nas_fpn_parses(toy_coco, tmp_path / 'one', monkeypatch, num_candidates=1)
    monkeypatch.undo()
    two = _nas_fpn_parses(toy_coco, tmp_path / 'two', monkeypatch, num_candidates=2)
    for counter in (one, two):
        # The training split: parsed by its dataset once per process.
        assert counter.dataset['instances_train.json'] == 1
        assert counter.coco['instances_train.json'] == 1
        # The held-out split: its dataset once, and the CocoMetric that scores on it once.
        assert counter.dataset['instances_heldout.json'] == 1
        assert counter.coco['instances_heldout.json'] == 2
    assert one.coco == two.coco
