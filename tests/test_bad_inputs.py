"""Bad input: one clear line on stderr, exit code 2, no traceback, work dir untouched."""
import json

import pytest
import torch

from conftest import TOY_CONFIG, run_tool, shrunk_search_options

FINETUNE_CONFIG = 'configs/detnas/retinanet_detnas_finetune_toy.py'


def assert_one_line_error(result, *expected):
    assert result.returncode == 2, result.stderr[-2000:]
    assert 'Traceback' not in result.stderr, result.stderr[-2000:]
    error_lines = [line for line in result.stderr.splitlines() if line.startswith('error: ')]
    assert len(error_lines) == 1, result.stderr[-2000:]
    for text in expected:
        assert text in error_lines[0], error_lines[0]


def search(work_dir, *options, config=TOY_CONFIG, resume=False):
    args = ['python', 'tools/search.py', config, '--work-dir', str(work_dir)]
    if options:
        args += ['--cfg-options', *options]
    return run_tool(args + (['--resume'] if resume else []))


def snapshot(directory):
    return {p.relative_to(directory): p.read_bytes() for p in directory.rglob('*') if p.is_file()}


def test_missing_config(tmp_path):
    assert_one_line_error(search(tmp_path, config='configs/detnas/nope.py'),
                          'config file not found', 'nope.py')


def test_missing_data_path(tmp_path):
    result = search(tmp_path / 'w', f'data_root={tmp_path}/no_such_data/')
    assert_one_line_error(result, 'annotation file not found', 'no_such_data',
                          'make_toy_data.py')


@pytest.mark.parametrize('option, expected', [
    ('strategy.type=Evolutoin', ["unknown strategy type 'Evolutoin'", 'Evolution']),
    ('strategy.populaton_size=3', ["has no setting 'populaton_size'", 'population_size']),
    ('search_space.type=NoSpace', ["unknown search_space type 'NoSpace'", 'DetNASSpace']),
    ('search.seeed=1', ["search has no setting 'seeed'", 'seed']),
])
def test_unknown_component_or_key(toy_coco, tmp_path, option, expected):
    assert_one_line_error(search(tmp_path / 'w', f'data_root={toy_coco}/', option), *expected)


def test_arch_file_from_another_space(toy_coco, tmp_path):
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
    result = run_tool(['python', 'tools/train.py', FINETUNE_CONFIG, '--work-dir', str(tmp_path / 'w'),
                       '--cfg-options', f'data_root={toy_coco}/', f'model.backbone.arch={arch_file}',
                       'model.backbone.init_cfg=None'])
    assert_one_line_error(result, 'layer07', 'shuffle9x9', 'xception3x3')


def test_checkpoint_for_another_space(toy_coco, tmp_path):
    work_dir = tmp_path / 'w'
    work_dir.mkdir()
    torch.save(dict(space='nas-fpn', space_version=1, round=3, shared_trained=True,
                    finished=False, strategy={}, history=[]), work_dir / 'search_state.pth')
    before = snapshot(work_dir)
    result = search(work_dir, f'data_root={toy_coco}/', resume=True)
    assert_one_line_error(result, "'nas-fpn'", "'detnas-small'")
    assert snapshot(work_dir) == before


def test_finished_search_is_not_overwritten(toy_coco, tmp_path):
    work_dir = tmp_path / 'w'
    options = shrunk_search_options(toy_coco, supernet_iters=4) + [
        'strategy.population_size=2', 'strategy.max_generations=1',
        'strategy.num_mutation=0', 'strategy.num_crossover=0', 'strategy.top_k=1']
    first = search(work_dir, *options)
    assert first.returncode == 0, first.stderr[-3000:]
    before = snapshot(work_dir)
    assert_one_line_error(search(work_dir, *options), str(work_dir), '--resume')
    assert snapshot(work_dir) == before
