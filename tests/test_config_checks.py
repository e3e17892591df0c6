"""Config checks before anything is built: missing checkpoints and class-count mismatches."""
import json

import pytest
from mmengine.config import Config

from conftest import REPO, assert_one_line, train_error
from nas_tasks.builder import load_config
from nas_tasks.config_checks import check_checkpoint_paths, check_num_classes
from nas_tasks.errors import NasError
from nas_tasks.modules import register_all_modules

TOY_DETNAS = str(REPO / 'configs/detnas/detnas_retinanet_toy.py')
TOY_FINETUNE = 'configs/detnas/retinanet_detnas_finetune_toy.py'
CITYSCAPES_TRAIN = str(REPO / 'configs/auto_deeplab/autodeeplab_s_cityscapes.py')
TEN_CLASSES = [f'class{i}' for i in range(10)]


@pytest.fixture(autouse=True, scope='module')
def registered():
    register_all_modules()


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """Run from an empty folder, so the configs' relative paths name nothing."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def error_of(check, cfg, **kwargs) -> str:
    with pytest.raises(NasError) as error:
        check(cfg, **kwargs)
    message = str(error.value)
    assert '\n' not in message, message
    return message


# -- checkpoints ---------------------------------------------------------------
def test_missing_supernet_weights_name_the_key_and_the_pretraining_command(elsewhere):
    cfg = load_config(str(REPO / 'configs/detnas/detnas_retinanet_coco.py'))
    message = error_of(check_checkpoint_paths, cfg)
    assert message.startswith('checkpoint not found: '
                              'work_dirs/detnas_supernet_imagenet/classifier_weights.pth '
                              '(model.backbone.init_cfg.checkpoint)'), message
    assert 'python tools/train.py configs/detnas/detnas_supernet_imagenet.py' in message


def test_missing_search_result_names_the_search_command(elsewhere):
    cfg = load_config(str(REPO / 'configs/detnas/retinanet_detnas_finetune_coco.py'))
    message = error_of(check_checkpoint_paths, cfg)
    assert 'work_dirs/detnas_retinanet_coco/best_subnet.pth' in message
    assert 'python tools/search.py configs/detnas/detnas_retinanet_coco.py' in message


def test_work_dir_of_no_config_names_the_work_dir(elsewhere):
    cfg = Config(dict(model=dict(backbone=dict(init_cfg=dict(
        type='Pretrained', checkpoint='work_dirs/my_search/best_subnet.pth')))))
    message = error_of(check_checkpoint_paths, cfg)
    assert '(model.backbone.init_cfg.checkpoint)' in message
    assert '--work-dir work_dirs/my_search' in message


def test_any_key_ending_in_checkpoint_or_weights_and_lists_of_init_cfgs(elsewhere):
    cfg = Config(dict(teacher_weights='teacher.pth'))
    message = error_of(check_checkpoint_paths, cfg)
    assert message == ('checkpoint not found: teacher.pth (teacher_weights); put the file there '
                       'or set teacher_weights to a local file')
    cfg = Config(dict(model=dict(neck=dict(init_cfg=[
        dict(type='Kaiming', layer='Conv2d'),
        dict(type='Pretrained', checkpoint='neck.pth')]))))
    assert '(model.neck.init_cfg.1.checkpoint)' in error_of(check_checkpoint_paths, cfg)


@pytest.mark.parametrize('key, url', [
    ('load_from', 'https://download.openmmlab.com/x.pth'),
    ('model.backbone.init_cfg.checkpoint', 'torchvision://resnet50'),
    ('model.pretrained', 'open-mmlab://resnet50_v1c'),
])
def test_urls_are_refused(key, url):
    cfg = Config()
    cfg.merge_from_dict({key: url})
    message = error_of(check_checkpoint_paths, cfg)
    assert message == f'{key} is a URL ({url}); nothing is downloaded here: point it at a local file'


def test_existing_files_and_no_checkpoints_pass(tmp_path):
    weights = tmp_path / 'w.pth'
    weights.write_bytes(b'')
    check_checkpoint_paths(Config(dict(load_from=str(weights), model=dict(backbone=dict(
        init_cfg=dict(type='Pretrained', checkpoint=str(weights)))))))
    check_checkpoint_paths(Config(dict(load_from=None, model=dict(backbone=dict(init_cfg=None)))))


def test_testing_needs_no_init_weights_but_its_checkpoint(tmp_path):
    cfg = Config(dict(load_from=str(tmp_path / 'iter_4.pth'), model=dict(backbone=dict(
        init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'init.pth'))))))
    assert '(load_from)' in error_of(check_checkpoint_paths, cfg, initialising=False)
    (tmp_path / 'iter_4.pth').write_bytes(b'')
    check_checkpoint_paths(cfg, initialising=False)
    assert 'init.pth' in error_of(check_checkpoint_paths, cfg)


# -- number of classes -----------------------------------------------------------
def test_toy_detector_on_ten_class_data(elsewhere):
    cfg = load_config(TOY_DETNAS, {'train_dataloader.dataset.metainfo.classes': TEN_CLASSES})
    assert error_of(check_num_classes, cfg) == (
        'train_dataloader.dataset.metainfo.classes has 10 classes but model.bbox_head.num_classes '
        'is 2; set model.bbox_head.num_classes=10')
    check_num_classes(load_config(TOY_DETNAS))


def test_faster_rcnn_roi_head(elsewhere):
    config = elsewhere / 'faster_rcnn.py'
    config.write_text("_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py']\n")
    cfg = load_config(str(config), {'train_dataloader.dataset.metainfo.classes': TEN_CLASSES})
    message = error_of(check_num_classes, cfg)
    assert message == ('train_dataloader.dataset.metainfo.classes has 10 classes but '
                       'model.roi_head.bbox_head.num_classes is 80; '
                       'set model.roi_head.bbox_head.num_classes=10')


def test_coco_without_metainfo_counts_the_annotation_categories(tmp_path):
    ann_file = tmp_path / 'annotations' / 'instances_train.json'
    ann_file.parent.mkdir()
    ann_file.write_text(json.dumps({'images': [], 'annotations': [], 'categories': [
        {'id': i, 'name': f'c{i}'} for i in range(3)]}))
    cfg = load_config(TOY_DETNAS, {'data_root': f'{tmp_path}/'})
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.pop('metainfo')
    message = error_of(check_num_classes, cfg)
    assert message == (f'train_dataloader.dataset.ann_file ({ann_file}) has 3 classes but '
                       'model.bbox_head.num_classes is 2; set model.bbox_head.num_classes=3 and '
                       'train_dataloader.dataset.metainfo.classes to its category names')


def test_coco_without_metainfo_or_file_uses_the_dataset_class(elsewhere):
    cfg = load_config(str(REPO / 'configs/detnas/retinanet_detnas_300m_preset_coco.py'),
                      {'model.bbox_head.num_classes': 20})
    message = error_of(check_num_classes, cfg)
    assert message.startswith("CocoDataset.METAINFO['classes'] (train_dataloader.dataset.type) "
                              'has 80 classes but model.bbox_head.num_classes is 20'), message
    check_num_classes(load_config(str(REPO / 'configs/detnas/retinanet_detnas_300m_preset_coco.py')))


def test_segmentor_heads():
    cfg = load_config(CITYSCAPES_TRAIN, {'model.decode_head.num_classes': 7})
    message = error_of(check_num_classes, cfg)
    assert message == ("CityscapesDataset.METAINFO['classes'] (train_dataloader.dataset.type) "
                       'has 19 classes but model.decode_head.num_classes is 7; '
                       'set model.decode_head.num_classes=19')
    check_num_classes(load_config(CITYSCAPES_TRAIN))

    cfg = load_config(CITYSCAPES_TRAIN, {'model.auxiliary_head': dict(type='FCNHead', num_classes=5)})
    assert 'model.auxiliary_head.num_classes is 5' in error_of(check_num_classes, cfg)


def test_segmentation_classes_from_metainfo_inside_a_wrapper():
    cfg = load_config(CITYSCAPES_TRAIN)
    inner = cfg.train_dataloader.dataset
    cfg.train_dataloader.dataset = dict(type='RepeatDataset', times=2, dataset=dict(
        inner, metainfo=dict(classes=('road', 'sky'))))
    message = error_of(check_num_classes, cfg)
    assert message.startswith('train_dataloader.dataset.dataset.metainfo.classes has 2 classes '
                              'but model.decode_head.num_classes is 19'), message


# -- wired into tools/train.py -------------------------------------------------
@pytest.mark.parametrize('options, expected', [
    (['model.bbox_head.num_classes=3', 'model.backbone.init_cfg=None'],
     'train_dataloader.dataset.metainfo.classes has 2 classes but model.bbox_head.num_classes is 3'),
    (['model.backbone.init_cfg.checkpoint=no/such/best_subnet.pth'],
     'checkpoint not found: no/such/best_subnet.pth (model.backbone.init_cfg.checkpoint)'),
])
def test_train_tool_stops_with_one_line(toy_coco, tmp_path, options, expected):
    message = train_error(TOY_FINETUNE, tmp_path / 'w', f'data_root={toy_coco}/', *options)
    assert_one_line(message, expected)
    assert not (tmp_path / 'w').exists() or not any((tmp_path / 'w').rglob('*.pth'))
