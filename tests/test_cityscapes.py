"""Cityscapes: the label table, labelIds -> trainIds, the toy set, the dataset configs, the CLIs."""
import copy
import os
import re
import shutil

import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

from conftest import assert_one_line, run_tool, tool_main
from nas_tasks.builder import apply_data_root, load_config
from nas_tasks.data_paths import check_dataset_paths
from nas_tasks.errors import NasError
from nas_tasks.toy_data import MANIFEST_NAME
from segmentation.cityscapes import (CLASSES, LABELS, NAME_TO_LABEL, PALETTE, convert_gtfine,
                                     label_ids_to_train_ids, train_ids_path)
from segmentation.toy_data import make_cityscapes

TOY_CONFIG = 'configs/_base_/datasets/toy_cityscapes.py'
FULL_CONFIG = 'configs/_base_/datasets/cityscapes.py'
# labelId -> trainId for every label the toy scenes paint, from cityscapesscripts' table.
TOY_TRAIN_IDS = {0: 255, 1: 255, 7: 0, 8: 1, 11: 2, 17: 5, 20: 7, 21: 8, 23: 10, 24: 11, 26: 13}
NAME = re.compile(r'^(aachen|bremen|frankfurt)_\d{6}_000019_'
                  r'(leftImg8bit|gtFine_labelIds|gtFine_labelTrainIds)\.png$')


def assert_one_line_error(result, *expected):
    assert result.returncode == 2, result.stderr[-2000:]
    assert 'Traceback' not in result.stderr, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), result.stderr[-2000:]
    for text in expected:
        assert text in lines[0], lines[0]


def files(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob('*') if p.is_file()}


def mtimes(root):
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob('*')}


def read(path):
    return np.asarray(Image.open(path))


# --- the label table and the conversion ---

def test_label_table_is_the_official_one():
    assert len(LABELS) == 35
    assert [label.id for label in LABELS] == list(range(34)) + [-1]
    evaluated = {label.trainId: label.name for label in LABELS if 0 <= label.trainId < 255}
    assert sorted(evaluated) == list(range(19))
    assert all(label.ignoreInEval == (label.trainId in (-1, 255)) for label in LABELS)
    assert NAME_TO_LABEL['license plate'].trainId == -1
    assert (NAME_TO_LABEL['car'].id, NAME_TO_LABEL['car'].category) == (26, 'vehicle')
    from mmseg.datasets import CityscapesDataset
    # mmseg names and colours the 19 classes exactly so, in trainId order.
    assert CLASSES == CityscapesDataset.METAINFO['classes']
    assert [list(colour) for colour in PALETTE] == CityscapesDataset.METAINFO['palette']


def test_label_ids_to_train_ids_on_hand_picked_ids():
    label_ids = np.array([[7, 8, 11, 23, 24, 26, 31, 33],
                          [0, 1, 4, 9, 29, -1, 34, 1000]], dtype=np.int32)
    expected = np.array([[0, 1, 2, 10, 11, 13, 16, 18],
                         [255, 255, 255, 255, 255, 255, 255, 255]], dtype=np.uint8)
    train_ids = label_ids_to_train_ids(label_ids)
    assert train_ids.dtype == np.uint8
    np.testing.assert_array_equal(train_ids, expected)
    as_png = label_ids_to_train_ids(np.array([7, 26, 33, 255, 34], dtype=np.uint8))
    np.testing.assert_array_equal(as_png, [0, 13, 18, 255, 255])
    with pytest.raises(TypeError):
        label_ids_to_train_ids(np.array([7.0]))


def test_generated_label_files_convert_by_the_table(toy_cityscapes):
    label_files = sorted(toy_cityscapes.glob('gtFine/*/*/*_gtFine_labelIds.png'))
    assert len(label_files) == 12
    seen = set()
    for path in label_files:
        label_ids, train_ids = read(path), read(train_ids_path(path))
        assert label_ids.shape == train_ids.shape == (64, 128) and train_ids.dtype == np.uint8
        np.testing.assert_array_equal(train_ids, label_ids_to_train_ids(label_ids))
        for label_id in np.unique(label_ids):
            assert (train_ids[label_ids == label_id] == TOY_TRAIN_IDS[int(label_id)]).all()
        assert (label_ids[-1] == 1).all(), 'the ego vehicle is at the bottom'
        seen |= set(np.unique(label_ids).tolist())
    assert {0, 1, 7, 8, 11, 23, 26} <= seen


def test_convert_keeps_present_maps_unless_overwrite(toy_cityscapes, tmp_path):
    root = tmp_path / 'cityscapes'
    shutil.copytree(toy_cityscapes / 'gtFine', root / 'gtFine')
    maps = sorted(root.glob('gtFine/*/*/*_labelTrainIds.png'))
    originals = {p: p.read_bytes() for p in maps}
    for path in maps[:5]:
        path.unlink()
    stale = maps[6]
    stale.write_bytes(b'stale')
    assert convert_gtfine(root, nproc=2) == (5, 7)
    assert all(p.read_bytes() == originals[p] for p in maps if p != stale)
    assert stale.read_bytes() == b'stale'
    assert convert_gtfine(root) == (0, 12)
    assert convert_gtfine(root, overwrite=True) == (12, 0)
    assert all(p.read_bytes() == originals[p] for p in maps)
    assert not [p for p in root.rglob('*') if p.name.endswith('.tmp')]


def test_convert_refuses_bad_roots(tmp_path):
    for root, expected in ((tmp_path / 'none', 'Cityscapes root not found'),
                           (tmp_path, 'no gtFine folder')):
        with pytest.raises(NasError, match=expected) as error:
            convert_gtfine(root)
        assert str(root) in str(error.value) and '\n' not in str(error.value)
    (tmp_path / 'gtFine' / 'train').mkdir(parents=True)
    with pytest.raises(NasError, match='no \\*_gtFine_labelIds.png files'):
        convert_gtfine(tmp_path)


# --- the toy set ---

def test_toy_layout_and_names(toy_cityscapes):
    for split, cities in (('train', {'aachen', 'bremen'}), ('val', {'frankfurt'})):
        images = sorted(toy_cityscapes.glob(f'leftImg8bit/{split}/*/*.png'))
        assert len(images) == (8 if split == 'train' else 4)
        assert {p.parent.name for p in images} == cities
        for image in images:
            assert NAME.match(image.name) and image.name.startswith(image.parent.name + '_')
            assert Image.open(image).mode == 'RGB' and Image.open(image).size == (128, 64)
            stem = image.name[:-len('_leftImg8bit.png')]
            for suffix in ('_gtFine_labelIds.png', '_gtFine_labelTrainIds.png'):
                label = toy_cityscapes / 'gtFine' / split / image.parent.name / f'{stem}{suffix}'
                assert Image.open(label).mode == 'L' and Image.open(label).size == (128, 64)
    for first_and_last in ('leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png',
                           'gtFine/val/frankfurt/frankfurt_000003_000019_gtFine_labelIds.png'):
        assert (toy_cityscapes / first_and_last).is_file()


def test_toy_classes_are_coloured_consistently(toy_cityscapes):
    """Each class is its Cityscapes colour, moved by at most 20 per image, plus noise."""
    for path in sorted(toy_cityscapes.glob('gtFine/train/*/*_labelIds.png')):
        label_ids = read(path)
        image = read(str(path).replace('gtFine', 'leftImg8bit', 1)
                     .replace('_gtFine_labelIds', '_leftImg8bit')).astype(float)
        for name in ('road', 'sidewalk', 'sky', 'car'):
            pixels = image[label_ids == NAME_TO_LABEL[name].id]
            if len(pixels) > 20:
                assert np.abs(pixels.mean(0) - NAME_TO_LABEL[name].color).max() < 23
                assert pixels.std(0).max() < 12


def test_toy_is_deterministic_and_seeded(tmp_path):
    first = files(make_cityscapes(tmp_path / 'a', num_train=2, num_val=1))
    assert len(first) == 10  # 3 images, 3 labelIds, 3 labelTrainIds, the manifest
    assert files(make_cityscapes(tmp_path / 'b', num_train=2, num_val=1)) == first
    other = files(make_cityscapes(tmp_path / 'c', num_train=2, num_val=1, seed=1))
    name = 'leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png'
    assert other[name] != first[name]


def test_toy_bad_parameters_raise(tmp_path):
    with pytest.raises(NasError, match='height must be an int >= 32, got 16'):
        make_cityscapes(tmp_path / 'a', image_size=(16, 128))
    with pytest.raises(NasError, match=r'image_size must be \(height, width\)'):
        make_cityscapes(tmp_path / 'b', image_size=64)
    with pytest.raises(NasError, match='num_val'):
        make_cityscapes(tmp_path / 'c', num_val=0)
    assert not list(tmp_path.iterdir())


# --- the configs and mmseg's CityscapesDataset ---

@pytest.fixture(scope='module')
def toy_cfg(toy_cityscapes) -> Config:
    return load_config(TOY_CONFIG, {'data_root': str(toy_cityscapes)})


def build_dataset(dataset_cfg):
    from mmengine.registry import DefaultScope
    from mmseg.registry import DATASETS

    from nas_tasks.modules import register_all_modules
    register_all_modules()
    # mmdet has a CityscapesDataset too: build in mmseg's scope, as a config's
    # default_scope='mmseg' makes the Runner do.
    with DefaultScope.overwrite_default_scope('mmseg'):
        return DATASETS.build(copy.deepcopy(dataset_cfg))


def test_toy_config_loads_through_mmseg_cityscapes_dataset(toy_cfg, toy_cityscapes):
    for split in ('train', 'val', 'test'):
        assert toy_cfg[f'{split}_dataloader'].dataset.data_root == f'{toy_cityscapes}/'
        check_dataset_paths(toy_cfg[f'{split}_dataloader'].dataset, split)
    train = build_dataset(toy_cfg.train_dataloader.dataset)
    val = build_dataset(toy_cfg.val_dataloader.dataset)
    assert type(train).__module__ == 'mmseg.datasets.cityscapes'
    assert (len(train), len(val)) == (8, 4)
    assert train.metainfo['classes'] == CLASSES
    for dataset, split in ((train, 'train'), (val, 'val')):
        for index in range(len(dataset)):
            info = dataset.get_data_info(index)
            assert info['img_path'].startswith(str(toy_cityscapes / 'leftImg8bit' / split))
            assert info['seg_map_path'].endswith('_gtFine_labelTrainIds.png')
            assert os.path.isfile(info['img_path']) and os.path.isfile(info['seg_map_path'])

    valid = set(range(19)) | {255}
    crops = [train[index] for index in range(len(train))]
    for sample in crops:
        labels = sample['data_samples'].gt_sem_seg.data
        assert tuple(sample['inputs'].shape) == (3, 64, 64) and tuple(labels.shape) == (1, 64, 64)
        assert set(labels.unique().tolist()) <= valid
    assert any(255 in sample['data_samples'].gt_sem_seg.data for sample in crops)
    for index in range(len(val)):
        sample = val[index]
        labels = sample['data_samples'].gt_sem_seg.data
        assert tuple(sample['inputs'].shape) == (3, 64, 128)
        found = set(labels.unique().tolist())
        assert found <= valid and 255 in found and {0, 1, 10, 13} <= found


def test_data_root_option_moves_wrapped_datasets_too(toy_cityscapes):
    cfg = Config.fromfile(TOY_CONFIG)
    cfg.train_dataloader.dataset = dict(type='RepeatDataset', times=2,
                                        dataset=cfg.train_dataloader.dataset)
    apply_data_root(cfg, str(toy_cityscapes))
    assert 'data_root' not in cfg.train_dataloader.dataset
    assert cfg.train_dataloader.dataset.dataset.data_root == f'{toy_cityscapes}/'
    check_dataset_paths(cfg.train_dataloader.dataset, 'train')
    assert len(build_dataset(cfg.train_dataloader.dataset)) == 16
    apply_data_root(cfg, str(toy_cityscapes / 'missing'))
    key = r'train_dataloader\.dataset\.dataset\.data_prefix\.img_path'
    with pytest.raises(NasError, match=key):
        check_dataset_paths(cfg.train_dataloader.dataset, 'train')


def test_full_config_with_missing_data_is_one_clear_line(tmp_path):
    cfg = load_config(FULL_CONFIG, {'data_root': str(tmp_path / 'cityscapes')})
    assert cfg.crop_size == (769, 769)
    with pytest.raises(NasError) as error:
        check_dataset_paths(cfg.train_dataloader.dataset, 'train')
    message = str(error.value)
    assert '\n' not in message
    for text in (f'train image folder not found: {tmp_path}/cityscapes/leftImg8bit/train',
                 'train_dataloader.dataset.data_prefix.img_path', 'data_root=',
                 'make_toy_data.py cityscapes', 'never downloaded'):
        assert text in message


def test_unconverted_cityscapes_names_the_converter(toy_cityscapes, tmp_path):
    root = tmp_path / 'cityscapes'
    shutil.copytree(toy_cityscapes, root, ignore=shutil.ignore_patterns('*_labelTrainIds.png'))
    cfg = load_config(FULL_CONFIG, {'data_root': str(root)})
    with pytest.raises(NasError, match=f'val has no \\*_gtFine_labelTrainIds.png maps under '
                                       f'{root}/gtFine/val; write them with: python '
                                       f'tools/convert_cityscapes.py {root}/'):
        check_dataset_paths(cfg.val_dataloader.dataset, 'val')


# --- the command-line tools ---

def test_make_toy_data_cityscapes_cli_is_idempotent(tmp_path, caplog):
    out = tmp_path / 'toy'
    args = ['cityscapes', str(out), '--num-train', '2', '--num-val', '1', '--height', '32',
            '--width', '64']
    make_toy_data = tool_main('make_toy_data')
    assert make_toy_data(args) == 0
    assert (out / MANIFEST_NAME).is_file()
    assert len(list(out.glob('gtFine/*/*/*_labelTrainIds.png'))) == 3
    assert Image.open(next(out.glob('leftImg8bit/val/frankfurt/*.png'))).size == (64, 32)
    before = mtimes(out)
    caplog.clear()
    with caplog.at_level('INFO'):
        assert make_toy_data(args) == 0
    assert caplog.messages == [f'toy data already present at {out}']
    assert mtimes(out) == before
    with pytest.raises(NasError) as error:
        make_toy_data(args[:-1] + ['96'])
    assert_one_line(str(error.value), 'other parameters', str(out))
    assert mtimes(out) == before


@pytest.mark.parametrize('option, expected', [
    (['--height', '8'], 'height must be an int >= 32, got 8'),
    (['--num-train', '0'], 'num_train must be an int >= 1, got 0'),
])
def test_make_toy_data_cityscapes_cli_bad_arguments(tmp_path, option, expected):
    with pytest.raises(NasError) as error:
        tool_main('make_toy_data')(['cityscapes', str(tmp_path / 'toy'), *option])
    assert_one_line(str(error.value), expected)
    assert not (tmp_path / 'toy').exists()


def test_convert_cityscapes_cli(toy_cityscapes, tmp_path, capsys):
    # The one subprocess of the tool: its error is one line and exit status 2.
    missing = run_tool(['python', 'tools/convert_cityscapes.py', str(tmp_path / 'nowhere')])
    assert_one_line_error(missing, 'Cityscapes root not found', str(tmp_path / 'nowhere'))
    assert not (tmp_path / 'nowhere').exists()
    convert = tool_main('convert_cityscapes')
    with pytest.raises(NasError) as error:
        convert([str(tmp_path)])
    assert_one_line(str(error.value), 'no gtFine folder', str(tmp_path))
    root = tmp_path / 'cityscapes'
    shutil.copytree(toy_cityscapes, root, ignore=shutil.ignore_patterns('*_labelTrainIds.png'))
    capsys.readouterr()
    assert convert([str(root), '--nproc', '2']) == 0
    assert capsys.readouterr().out.startswith('wrote 12 labelTrainIds maps under ')
    assert files(root / 'gtFine') == files(toy_cityscapes / 'gtFine')
    assert convert([str(root)]) == 0
    again = capsys.readouterr().out
    assert 'wrote 0 labelTrainIds maps' in again and 'kept 12' in again
