"""Pre-flight of both kinds of search: heads that do not fit the data, and keys the
config's kind of search would leave unused, stop tools/search.py in one line
before anything is built or trained."""
from pathlib import Path

import pytest

from conftest import REPO, assert_one_line, assert_one_line_error, run_tool, search_error
from nas_tasks.builder import build_component, load_config
from nas_tasks.config_checks import check_num_classes, is_search_config
from nas_tasks.errors import NasError
from nas_tasks.modules import register_all_modules
from nas_tasks.registry import DIFFERENTIABLE_SEARCHES
from nas_tasks.search import check_search_keys

AUTO_DEEPLAB = 'configs/auto_deeplab/auto_deeplab_toy.py'
FNA_SEGMENTATION = 'configs/fna/fna_deeplabv3_toy.py'
FNA_DETECTION = 'configs/fna/fna_retinanet_toy.py'
DETNAS = 'configs/detnas/detnas_retinanet_toy.py'
SEARCH_CONFIGS = sorted(str(path.relative_to(REPO)) for path in (REPO / 'configs').glob('**/*.py')
                        if '_base_' not in path.parts)
# 11 of Cityscapes' 19 classes: mmseg maps the others to 255 (ignored).
ELEVEN_CLASSES = ('road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light',
                  'traffic sign', 'vegetation', 'terrain', 'sky')
# The seed weights of the FNA toy configs are written by a training these tests do not run.
NO_SEED_WEIGHTS = 'model.backbone.seed.weights=None'


@pytest.fixture(autouse=True, scope='module')
def registered():
    register_all_modules()


@pytest.fixture(autouse=True)
def at_repo(monkeypatch):
    monkeypatch.chdir(REPO)


def config(path: str, **options):
    return load_config(str(REPO / path), options)


def error_of(check, *args, **kwargs) -> str:
    with pytest.raises(NasError) as error:
        check(*args, **kwargs)
    assert_one_line(str(error.value))
    return str(error.value)


def build_task(cfg):
    return build_component(DIFFERENTIABLE_SEARCHES, cfg.differentiable_search,
                           'differentiable_search', default_args=dict(config=cfg))


# -- every shipped search passes ------------------------------------------------------
@pytest.mark.parametrize('path', SEARCH_CONFIGS)
def test_shipped_search_configs_pass(path):
    cfg = config(path)
    if not is_search_config(cfg):
        return
    check_search_keys(cfg)
    if 'differentiable_search' in cfg:
        task = build_task(cfg)
        check_num_classes(cfg, scope=task.default_scope)
    else:
        check_num_classes(cfg)


# -- heads against the data ------------------------------------------------------------
def test_auto_deeplab_takes_no_model_and_says_where_its_classes_come_from(tmp_path):
    message = search_error(tmp_path / 'w', 'model.decode_head.num_classes=7', config=AUTO_DEEPLAB)
    assert message == (
        "AutoDeepLabSearch does not read 'model' (model.decode_head.num_classes=7 is set): "
        'its search network is differentiable_search.network and predicts the classes of '
        "train_dataloader.dataset; remove 'model'")
    assert not (tmp_path / 'w').exists()


def test_auto_deeplab_on_eleven_classes_scored_on_nineteen(tmp_path):
    message = search_error(tmp_path / 'w',
                           f'train_dataloader.dataset.metainfo.classes={list(ELEVEN_CLASSES)}',
                           config=AUTO_DEEPLAB)
    assert message == (
        'train_dataloader.dataset.metainfo.classes has 11 classes but '
        "CityscapesDataset.METAINFO['classes'] (val_dataloader.dataset.type) has 19; the model "
        'learns the classes of one split and is scored on the other: give every split the '
        'same classes')
    # Both splits on the same 11 classes: the search network predicts 11.
    both = config(AUTO_DEEPLAB)
    for split in ('train', 'val', 'test'):
        both[f'{split}_dataloader'].dataset.metainfo = dict(classes=ELEVEN_CLASSES)
    check_num_classes(both, scope=build_task(both).default_scope)


def test_fna_segmentation_head_against_cityscapes(tmp_path):
    # CityscapesDataset is registered by mmdet too (8 classes): the task's scope decides.
    message = search_error(tmp_path / 'w', NO_SEED_WEIGHTS, 'model.decode_head.num_classes=7',
                           config=FNA_SEGMENTATION)
    assert message == ("CityscapesDataset.METAINFO['classes'] (train_dataloader.dataset.type) "
                       'has 19 classes but model.decode_head.num_classes is 7; '
                       'set model.decode_head.num_classes=19')
    assert not (tmp_path / 'w').exists()


def test_fna_segmentation_on_eleven_class_data_with_a_nineteen_class_head(tmp_path):
    message = search_error(tmp_path / 'w', NO_SEED_WEIGHTS,
                           f'train_dataloader.dataset.metainfo.classes={list(ELEVEN_CLASSES)}',
                           config=FNA_SEGMENTATION)
    assert message == ('train_dataloader.dataset.metainfo.classes has 11 classes but '
                       'model.decode_head.num_classes is 19; set model.decode_head.num_classes=11')


def test_fna_detection_head_against_the_toy_classes(tmp_path):
    message = search_error(tmp_path / 'w', NO_SEED_WEIGHTS, 'model.bbox_head.num_classes=7',
                           config=FNA_DETECTION)
    assert message == ('train_dataloader.dataset.metainfo.classes has 2 classes but '
                       'model.bbox_head.num_classes is 7; set model.bbox_head.num_classes=2')


def test_the_tool_stops_an_auto_deeplab_search_in_one_line_before_training(tmp_path):
    work_dir = tmp_path / 'adl7'
    result = run_tool(['python', 'tools/search.py', AUTO_DEEPLAB, '--work-dir', str(work_dir),
                       '--cfg-options', 'model.decode_head.num_classes=7'], timeout=300)
    assert_one_line_error(result, "AutoDeepLabSearch does not read 'model'",
                          'model.decode_head.num_classes=7')
    assert not work_dir.exists()


# -- keys of the other kind of search ----------------------------------------------------
@pytest.mark.parametrize('key, value, expected', [
    ('strategy', {'type': 'Evolution'}, "'strategy' belongs to a sample-based search"),
    ('estimator', {'type': 'OneShotDetectionEstimator'}, "'estimator' belongs to a sample-based"),
    ('search', {'candidates_per_round': 8}, "'search' belongs to a sample-based search"),
    ('candidates_per_round', 8, "'candidates_per_round' (search.candidates_per_round) belongs to "
                                'a sample-based search'),
    ('optim_wrapper', {'optimizer': {'type': 'SGD', 'lr': 0.1}},
     "a differentiable search does not read 'optim_wrapper' (an mmengine Runner setting): its "
     'trainer takes differentiable_search.trainer.weight_optimizer and arch_optimizer'),
    ('param_scheduler', [{'type': 'PolyLR'}],
     "does not read 'param_scheduler' (an mmengine Runner setting): its trainer takes "
     'differentiable_search.trainer.param_scheduler'),
    ('train_cfg', {'max_epochs': 3}, 'its trainer takes differentiable_search.trainer.epochs'),
])
@pytest.mark.parametrize('path', [AUTO_DEEPLAB, FNA_DETECTION])
def test_a_differentiable_config_with_keys_it_does_not_read(path, key, value, expected):
    cfg = config(path)
    check_search_keys(cfg)
    cfg[key] = value
    message = error_of(check_search_keys, cfg)
    assert expected in message, message
    assert message.endswith("and set those") or f"remove '{key}'" in message, message


def test_a_sample_based_config_with_differentiable_settings():
    cfg = config(DETNAS)
    check_search_keys(cfg)
    cfg.trainer = dict(epochs=3)
    assert error_of(check_search_keys, cfg) == (
        "'trainer' belongs to a differentiable search (differentiable_search), and this "
        "sample-based search does not read it: remove 'trainer'")
    cfg = config(DETNAS)
    cfg.arch_optimizer = dict(type='Adam', lr=3e-4)
    assert "'arch_optimizer' belongs to a differentiable search" in error_of(check_search_keys, cfg)


def test_a_config_of_both_kinds_is_refused(tmp_path):
    both = config(DETNAS)
    both.differentiable_search = config(AUTO_DEEPLAB).differentiable_search
    assert "'search_space' belongs to a sample-based search" in error_of(check_search_keys, both)


def test_the_tool_runs_the_key_check(tmp_path):
    message = search_error(tmp_path / 'w', 'strategy.type=Evolution', config=AUTO_DEEPLAB)
    assert message.startswith("'strategy' belongs to a sample-based search"), message
    assert not Path(tmp_path / 'w').exists()


def test_sample_based_settings_inside_differentiable_search_are_refused():
    cfg = config(AUTO_DEEPLAB, **{'differentiable_search.candidates_per_round': 8})
    message = error_of(build_task, cfg)
    assert message.startswith("differentiable_search 'AutoDeepLabSearch' has no setting "
                              "'candidates_per_round'"), message
