"""A found DetNAS backbone in an mmdet RetinaNet config trains with mmdet's own train tool
and tests with tools/test.py."""
import json
import re
from pathlib import Path

import pytest
import torch

from conftest import openmmlab_tool, run_tool

FINETUNE_CONFIG = 'configs/detnas/retinanet_detnas_finetune_toy.py'


@pytest.fixture
def found_backbone(detnas_search):
    """best_arch.json and best_subnet.pth as the session's DetNAS toy search exported them."""
    directory = detnas_search.work_dir
    return directory, json.loads((directory / 'best_arch.json').read_text())['arch']


def data_options(data_root: Path) -> list[str]:
    root = f'{data_root}/'
    return [f'{split}_dataloader.dataset.data_root={root}' for split in ('train', 'val', 'test')] + [
        f'{split}_evaluator.ann_file={root}annotations/instances_val.json' for split in ('val', 'test')]


def test_found_backbone_trains_with_mmdet_tools_and_tests(found_backbone, toy_coco, tmp_path):
    search_dir, arch = found_backbone
    work_dir = tmp_path / 'finetune'
    options = data_options(toy_coco) + [
        f'model.backbone.arch={search_dir}/best_arch.json',
        f'model.backbone.init_cfg.checkpoint={search_dir}/best_subnet.pth',
        'train_cfg.max_iters=4', 'train_cfg.val_interval=4',
        'default_hooks.checkpoint.interval=4',
        # After 4 iterations no box clears the default 0.05 score threshold and
        # CocoMetric would report nothing; every box counts here.
        'model.test_cfg.score_thr=0.0']
    run_tool(['python', openmmlab_tool('mmdet', 'train'), FINETUNE_CONFIG, '--work-dir', str(work_dir),
              '--cfg-options', *options], check=True)
    checkpoint = work_dir / 'iter_4.pth'
    state = torch.load(checkpoint, map_location='cpu', weights_only=False)['state_dict']
    chosen = [k for k in state if k.startswith('backbone.layers.0.')]
    assert chosen and not any('.choices.' in k for k in state), 'not the standalone backbone'

    # mmdet's own test tool reads an exported config in test_export.py; this project's
    # (what the README shows) tests the fine-tuned checkpoint here.
    ours = run_tool(['python', 'tools/test.py', FINETUNE_CONFIG, str(checkpoint),
                     '--work-dir', str(work_dir), '--cfg-options', *options], check=True)
    match = re.search(r'^coco/bbox_mAP: ([0-9.]+)$', ours.stdout, re.MULTILINE)
    assert match and 0.0 <= float(match.group(1)) <= 1.0


def test_arch_json_round_trips_through_the_backbone(found_backbone):
    from mmdet.registry import MODELS
    search_dir, arch = found_backbone
    backbone = MODELS.build(dict(type='DetNASBackbone', arch=str(search_dir / 'best_arch.json')))
    assert backbone.arch == arch
    document = json.loads((search_dir / 'best_arch.json').read_text())
    assert document['space'] == 'detnas-small' and document['version'] == 1
