"""The toy DetNAS search runs on a user's own COCO-format data by changing the config alone."""
import json
import shutil

import pytest

from conftest import run_tool, search_error
from detection.coco_split import write_split

EXAMPLE = 'configs/examples/detnas_own_coco_data.py'


def own_data(toy_coco, root):
    """A COCO-format set laid out as a user's: images/ and annotations/train.json,
    split into search-train and held-out parts with tools/split_coco.py."""
    (root / 'annotations').mkdir(parents=True)
    shutil.copytree(toy_coco / 'train', root / 'images')
    shutil.copy(toy_coco / 'annotations' / 'instances_train.json', root / 'annotations' / 'train.json')
    write_split(root / 'annotations' / 'train.json', 6, seed=0)  # what tools/split_coco.py runs
    return root


@pytest.mark.slow  # a whole DetNAS search beside the session's
def test_the_example_config_searches_own_data(toy_coco, tmp_path):
    root = own_data(toy_coco, tmp_path / 'mine')
    work_dir = tmp_path / 'search'
    # What a user edits in the example's file, given as overrides.
    options = [f'data_root={root}/',
               "train_dataloader.dataset.metainfo.classes=('square','disc')",
               "val_dataloader.dataset.metainfo.classes=('square','disc')",
               "test_dataloader.dataset.metainfo.classes=('square','disc')",
               'model.bbox_head.num_classes=2', 'model.test_cfg.score_thr=0.0',
               'train_cfg.max_iters=4', 'strategy.population_size=2', 'strategy.max_generations=1',
               'strategy.top_k=1', 'strategy.num_mutation=0', 'strategy.num_crossover=0',
               'estimator.bn_recalibration_batches=1']
    run_tool(['python', 'tools/search.py', EXAMPLE, '--work-dir', str(work_dir),
              '--cfg-options', *options], check=True)
    candidates = [json.loads(line) for line in (work_dir / 'candidates.jsonl').read_text().splitlines()]
    assert len(candidates) == 2 and all(c['status'] == 'ok' for c in candidates)
    assert (work_dir / 'best_arch.json').is_file()


def test_class_names_the_annotation_file_lacks_get_one_line(toy_coco, tmp_path):
    """Left as they are, the example's classes are not the data's: mmdet would
    silently keep no image. The search refuses before anything is built."""
    root = own_data(toy_coco, tmp_path / 'mine')
    message = search_error(tmp_path / 'search', f'data_root={root}/', config=EXAMPLE)
    assert message == (f"train_dataloader.dataset.metainfo.classes names 'cat', but "
                       f"{root}/annotations/train_search_train.json has no such category; its "
                       'categories are: square, disc')
    assert not (tmp_path / 'search').exists()
