"""Bad input: one clear line on stderr, exit code 2, no traceback, work dir untouched.

The conversion of an error into that line is one function (nas_tasks.cli.run_cli):
it is checked once per tool in a subprocess; the other cases call the tool's
function in this process and check the one-line NasError it raises."""
import json

import pytest
import torch

from conftest import (assert_one_line, assert_one_line_error, run_tool, search_error, snapshot,
                      train_error)

FINETUNE_CONFIG = 'configs/detnas/retinanet_detnas_finetune_toy.py'


def test_missing_config_is_one_line_from_the_search_tool(tmp_path):
    result = run_tool(['python', 'tools/search.py', 'configs/detnas/nope.py',
                       '--work-dir', str(tmp_path)])
    assert_one_line_error(result, 'config file not found', 'nope.py')


def test_missing_data_path(tmp_path):
    message = search_error(tmp_path / 'w', f'data_root={tmp_path}/no_such_data/')
    assert_one_line(message, 'annotation file not found', 'no_such_data', 'make_toy_data.py')
    assert not (tmp_path / 'w').exists()


@pytest.mark.parametrize('option, expected', [
    ('strategy.type=Evolutoin', ["unknown strategy type 'Evolutoin'", 'Evolution']),
    ('strategy.populaton_size=3', ["has no setting 'populaton_size'", 'population_size']),
    ('search_space.type=NoSpace', ["unknown search_space type 'NoSpace'", 'DetNASSpace']),
    ('search.seeed=1', ["search has no setting 'seeed'", 'seed']),
])
def test_unknown_component_or_key(toy_coco, tmp_path, option, expected):
    assert_one_line(search_error(tmp_path / 'w', f'data_root={toy_coco}/', option), *expected)


def test_arch_file_from_another_space_is_one_line_from_the_train_tool(toy_coco, tmp_path):
    arch_file = tmp_path / 'best_arch.json'
    arch_file.write_text(json.dumps({'space': 'nas-fpn', 'version': 1, 'arch': {}, 'metrics': {}}))
    result = run_tool(['python', 'tools/train.py', FINETUNE_CONFIG, '--work-dir', str(tmp_path / 'w'),
                       '--cfg-options', f'data_root={toy_coco}/', f'model.backbone.arch={arch_file}',
                       'model.backbone.init_cfg=None'])
    assert_one_line_error(result, 'nas-fpn')


def test_arch_file_with_a_bad_value(toy_coco, tmp_path):
    arch = {f'layer{i:02d}': 'shuffle3x3' for i in range(20)}
    arch['layer07'] = 'shuffle9x9'
    arch_file = tmp_path / 'best_arch.json'
    arch_file.write_text(json.dumps({'space': 'detnas-small', 'version': 1, 'arch': arch}))
    message = train_error(FINETUNE_CONFIG, tmp_path / 'w', f'data_root={toy_coco}/', f'model.backbone.arch={arch_file}',
                          'model.backbone.init_cfg=None')
    assert_one_line(message, 'layer07', 'shuffle9x9', 'xception3x3')


def test_checkpoint_for_another_space(toy_coco, tmp_path):
    work_dir = tmp_path / 'w'
    work_dir.mkdir()
    torch.save(dict(space='nas-fpn', space_version=1, round=3, shared_trained=True,
                    finished=False, strategy={}, history=[]), work_dir / 'search_state.pth')
    before = snapshot(work_dir)
    message = search_error(work_dir, f'data_root={toy_coco}/', resume=True)
    assert_one_line(message, "'nas-fpn'", "'detnas-small'")
    assert snapshot(work_dir) == before
