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


# -- mmengine datasets built once, shared by copies that own their pipelines -----------
def _toy_train_cfg(toy_coco) -> dict:
    from mmengine.config import Config

    from nas_tasks.builder import apply_data_root
    cfg = Config.fromfile(str(REPO / 'configs/_base_/datasets/toy_coco_detection.py'))
    apply_data_root(cfg, f'{toy_coco}/')
    return cfg.train_dataloader.dataset.to_dict()


def test_a_parsed_once_dataset_is_parsed_at_the_first_build_and_shared_after(
        toy_coco, monkeypatch):
    from mmengine.registry import DATASETS, DefaultScope
    from mmengine.runner import Runner

    from nas_tasks.built_datasets import forget_parsed_datasets, parsed_dataset, parsed_once

    forget_parsed_datasets()
    counter = ParseCounter(monkeypatch)
    dataset_cfg = _toy_train_cfg(toy_coco)
    with DefaultScope.overwrite_default_scope('mmdet'):
        fresh = DATASETS.build(dataset_cfg)  # the reference: a plain build of the config
        first, second = (DATASETS.build(parsed_once(dataset_cfg)) for _ in range(2))
        # mmengine's Runner builds a dataloader from the dict (as each proxy Runner does).
        loader = Runner.build_dataloader(dict(batch_size=2, num_workers=0,
                                              sampler=dict(type='DefaultSampler', shuffle=False),
                                              dataset=parsed_once(dataset_cfg)))
        parsed = parsed_dataset(dataset_cfg)
    assert counter.dataset['instances_train.json'] == 2  # the reference, and one parse
    copies = [first, second, loader.dataset]
    for copy in copies:
        assert type(copy) is type(fresh)
        assert copy.data_bytes is parsed.data_bytes and copy.data_address is parsed.data_address
        assert copy.pipeline is not parsed.pipeline
        assert copy.pipeline.transforms[0] is not parsed.pipeline.transforms[0]
    assert first.pipeline is not second.pipeline
    # The same samples as a dataset built from the config, through the same pipeline.
    infos = [fresh.get_data_info(i) for i in range(len(fresh))]
    assert len({info['img_id'] for info in infos}) == len(fresh) == 16
    for copy in copies:
        assert [copy.get_data_info(i) for i in range(len(copy))] == infos
    import torch

    from nas_tasks.seeding import seed_everything
    seed_everything(0)  # the random flip draws from numpy
    expected = fresh[3]
    seed_everything(0)
    got = first[3]
    assert torch.equal(got['inputs'], expected['inputs'])
    assert got['data_samples'].img_id == expected['data_samples'].img_id
    assert torch.equal(got['data_samples'].gt_instances.bboxes.tensor,
                       expected['data_samples'].gt_instances.bboxes.tensor)


def test_a_rewritten_annotation_file_is_parsed_again(toy_coco, tmp_path, monkeypatch):
    import shutil

    from mmengine.registry import DATASETS, DefaultScope

    from nas_tasks.built_datasets import forget_parsed_datasets, parsed_once

    forget_parsed_datasets()
    root = tmp_path / 'coco'
    shutil.copytree(toy_coco, root)
    dataset_cfg = _toy_train_cfg(root)
    ann_file = root / 'annotations' / 'instances_train.json'
    counter = ParseCounter(monkeypatch)
    with DefaultScope.overwrite_default_scope('mmdet'):
        assert len(DATASETS.build(parsed_once(dataset_cfg))) == 16
        content = json.loads(ann_file.read_text())
        content['images'] = content['images'][:10]
        ann_file.write_text(json.dumps(content))
        os.utime(ann_file, ns=(1, 1))  # another modification time, whatever the clock
        assert len(DATASETS.build(parsed_once(dataset_cfg))) == 10
        assert len(DATASETS.build(parsed_once(dataset_cfg))) == 10
    assert counter.dataset['instances_train.json'] == 2


# -- a differentiable search: one parse of its training split, two halves from it ------
def test_a_differentiable_search_parses_its_training_split_once(toy_coco, tmp_path, monkeypatch):
    from test_differentiable_task import TRAINER, ToyDetectionSearch, toy_config

    counter = ParseCounter(monkeypatch)
    ToyDetectionSearch(toy_config(toy_coco), TRAINER).run(tmp_path)
    assert counter.dataset['instances_train.json'] == 1  # the old code: 3 (split, two halves)
    assert counter.dataset['instances_val.json'] == 1


@pytest.mark.parametrize('indices', [None, 12, [15, 3, 8, 0, 11, 6, 9, 2]])
def test_the_halves_hold_the_samples_that_the_config_built_with_indices_holds(toy_coco, indices):
    """The halves of the one parse hold, in order, the images that the config built again
    with ``indices=`` holds (what the search trained on before): a run's data is unchanged."""
    import math

    import torch
    from mmengine.registry import DefaultScope

    from test_differentiable_task import TRAINER, ToyDetectionSearch, image_ids, toy_config

    cfg = toy_config(toy_coco)
    if indices is not None:
        cfg.train_dataloader.dataset['indices'] = indices
    task = ToyDetectionSearch(cfg, TRAINER, arch_fraction=0.25, seed=3)
    with DefaultScope.overwrite_default_scope('mmdet'):
        train_set = task.build_dataset('train')
        weight, arch = task.halves(train_set)
        size = len(train_set)
        order = torch.randperm(size, generator=torch.Generator().manual_seed(3)).tolist()
        num_weight = size - math.floor(size * 0.25 + 0.5)

        def rebuilt(positions):  # the config built again, picking its images by indices=
            dataset_cfg = cfg.train_dataloader.dataset.copy()
            given = dataset_cfg.get('indices')
            dataset_cfg['indices'] = (positions if given is None or isinstance(given, int)
                                      else [given[p] for p in positions])
            return task._build_dataset(dataset_cfg)

        expected = rebuilt(order[:num_weight]), rebuilt(order[num_weight:])
    assert len(weight) + len(arch) == size == (16 if indices is None else 12 if indices == 12 else 8)
    assert len(arch) >= 2 and len(weight) > len(arch)
    assert image_ids(weight) == image_ids(expected[0])
    assert image_ids(arch) == image_ids(expected[1])
    assert set(image_ids(weight)).isdisjoint(image_ids(arch))
    assert [weight.get_data_info(i) for i in range(len(weight))] == \
        [expected[0].get_data_info(i) for i in range(len(weight))]


# -- the class-count check reads only the categories, once per process --------------------
def _coco_file(path, layout: str, names=('cat', 'dog', 'bird')) -> None:
    """A COCO annotation file whose top-level keys come in ``layout`` order, with bulky
    annotations (1,000 images, 5,000 boxes) and a nested 'categories' key in them."""
    images = [{'id': i, 'file_name': f'{i}.jpg', 'height': 64, 'width': 64} for i in range(1000)]
    annotations = [{'id': i, 'image_id': i % 1000, 'category_id': 1, 'bbox': [1, 2, 30, 40],
                    'area': 1200, 'iscrowd': 0, 'categories': [{'name': 'not a class'}]}
                   for i in range(5000)]
    parts = {'images': images, 'annotations': annotations,
             'categories': [{'id': i + 1, 'name': name} for i, name in enumerate(names)]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({key: parts[key] for key in layout.split(',')}, indent=1))


def _classes_source(path):
    from nas_tasks.config_checks import dataset_classes
    dataset = dict(type='CocoDataset', data_root=f'{path.parent}/', ann_file=path.name)
    return dataset_classes(dataset, 'train_dataloader.dataset', 'mmdet')


@pytest.mark.parametrize('layout', ['images,annotations,categories', 'categories,images,annotations'])
def test_the_class_check_parses_only_the_categories_of_a_coco_file(tmp_path, monkeypatch, layout):
    """COCO's own files end with their categories (train2017's after 860k boxes): only that
    value is parsed, never the whole file (the old check json.load-ed it on every rank)."""
    path = tmp_path / layout.replace(',', '_') / 'instances.json'
    _coco_file(path, layout)

    def no_whole_file(*args, **kwargs):
        raise AssertionError('the whole annotation file was parsed')

    monkeypatch.setattr(json, 'load', no_whole_file)
    monkeypatch.setattr(json, 'loads', no_whole_file)
    known = _classes_source(path)
    assert known.count == 3 and str(path) in known.source


def test_categories_elsewhere_are_read_from_the_whole_file(tmp_path):
    path = tmp_path / 'instances.json'
    _coco_file(path, 'images,categories,annotations', names=('a', 'b', 'c', 'd', 'e'))
    assert _classes_source(path).count == 5  # not the nested 'categories' at the end


def test_the_categories_are_read_once_per_file_version(tmp_path, monkeypatch):
    from mmengine.config import Config

    import nas_tasks.config_checks as config_checks

    path = tmp_path / 'annotations' / 'instances.json'
    _coco_file(path, 'images,annotations,categories', names=('cat', 'dog'))
    reads = []
    read = config_checks._top_level_value_at_an_end
    monkeypatch.setattr(config_checks, '_top_level_value_at_an_end',
                        lambda *args: reads.append(args) or read(*args))
    dataset = dict(type='CocoDataset', data_root=f'{tmp_path}/', ann_file='annotations/instances.json',
                   metainfo=dict(classes=('cat', 'dog')))
    cfg = Config(dict(model=dict(bbox_head=dict(num_classes=2)), default_scope='mmdet',
                      **{f'{split}_dataloader': dict(dataset=dataset) for split in ('train', 'val')}))
    config_checks.check_num_classes(cfg)
    config_checks.check_num_classes(cfg)
    assert len(reads) == 1  # 2 splits x (named classes, class count) x 2 checks: one read
    _coco_file(path, 'images,annotations,categories', names=('cat', 'dog', 'cow'))
    os.utime(path, ns=(1, 1))
    with pytest.raises(config_checks.NasError, match='has 3 classes but model.bbox_head.num_classes is 2'):
        config_checks.check_num_classes(Config(dict(cfg.to_dict(), train_dataloader=dict(
            dataset=dict(dataset, metainfo=None)))))
    assert len(reads) == 2


def test_a_wrapped_dataset_shares_the_annotations_of_the_dataset_it_wraps(toy_coco, monkeypatch):
    from mmengine.registry import DATASETS, DefaultScope

    from nas_tasks.built_datasets import forget_parsed_datasets, parsed_once

    forget_parsed_datasets()
    counter = ParseCounter(monkeypatch)
    wrapped = dict(type='RepeatDataset', times=2, dataset=_toy_train_cfg(toy_coco))
    with DefaultScope.overwrite_default_scope('mmdet'):
        first, second = (DATASETS.build(parsed_once(wrapped)) for _ in range(2))
    assert counter.dataset['instances_train.json'] == 1
    assert len(first) == len(second) == 32
    assert first.dataset is not second.dataset
    assert first.dataset.data_bytes is second.dataset.data_bytes
    assert first.dataset.pipeline is not second.dataset.pipeline
