import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from conftest import tool_main
from detection.toy_data import make_coco, make_imagenet
from nas_tasks.errors import NasError
from nas_tasks.toy_data import MANIFEST_NAME

REPO = Path(__file__).resolve().parents[1]
CLI = REPO / 'tools' / 'make_toy_data.py'

# pycocotools 2.0.x decoding under numpy 2; harmless.
pytestmark = pytest.mark.filterwarnings('ignore:__array__ implementation:DeprecationWarning')


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob('*')) if p.is_file()}


def _mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob('*')}


def _run_cli(*args) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get('PYTHONPATH', '')]))
    return subprocess.run([sys.executable, str(CLI), *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope='module')
def coco_dir(tmp_path_factory) -> Path:
    return make_coco(tmp_path_factory.mktemp('coco') / 'toy')


@pytest.fixture(scope='module')
def coco_splits(coco_dir) -> dict[str, COCO]:
    return {split: COCO(str(coco_dir / 'annotations' / f'instances_{split}.json'))
            for split in ('train', 'val', 'heldout')}


def test_coco_is_deterministic(coco_dir, tmp_path):
    first = _files(coco_dir)
    second = _files(make_coco(tmp_path / 'again'))
    assert first.keys() == second.keys()
    assert len([name for name in first if name.endswith('.png')]) == 64 + 16 + 16
    assert first == second


def test_seed_changes_the_data(tmp_path):
    a = _files(make_coco(tmp_path / 'a', num_train=2, num_val=1, seed=0))
    b = _files(make_coco(tmp_path / 'b', num_train=2, num_val=1, seed=1))
    assert a['annotations/instances_train.json'] != b['annotations/instances_train.json']
    assert a['train/000001.png'] != b['train/000001.png']


def _smallest_visible_area() -> float:
    """What the generator keeps visible of the smallest object it draws (a disc
    in a 32 px box): MIN_VISIBLE_FRACTION of its rasterised area."""
    from nas_tasks.toy_data import MIN_VISIBLE_FRACTION, Box, polygon, rasterize
    disc = rasterize(polygon('disc', Box(0, 0, 32, 32)), 32, 32)
    return MIN_VISIBLE_FRACTION * disc.sum()


SMALLEST_VISIBLE_AREA = _smallest_visible_area()


def test_coco_annotations_match_images(coco_dir, coco_splits):
    out = coco_dir
    occluded = 0
    for split, coco in coco_splits.items():
        assert {c['name'] for c in coco.loadCats(coco.getCatIds())} == {'square', 'disc'}
        for image_id, info in coco.imgs.items():
            pixels = np.asarray(Image.open(out / split / info['file_name']).convert('RGB'))
            assert pixels.shape == (info['height'], info['width'], 3) == (128, 128, 3)
            anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))
            assert 1 <= len(anns) <= 3
            masks = np.stack([coco.annToMask(a) for a in anns])
            # An occluded object's mask excludes what covers it.
            assert masks.sum(axis=0).max() == 1
            for ann, mask in zip(anns, masks):
                x, y, w, h = ann['bbox']
                assert ann['iscrowd'] == 0
                assert x >= 0 and y >= 0 and x + w <= 128 and y + h <= 128
                assert ann['area'] == mask.sum() > 0
                ys, xs = np.nonzero(mask)
                assert [x, y, w, h] == [xs.min(), ys.min(), np.ptp(xs) + 1, np.ptp(ys) + 1]
                if isinstance(ann['segmentation'], list):
                    assert 32 <= w <= 64 and 32 <= h <= 64
                else:
                    occluded += 1
                    assert w <= 64 and h <= 64 and ann['area'] >= SMALLEST_VISIBLE_AREA
                # The object is painted where its mask is: one flat colour plus noise.
                assert pixels[mask.astype(bool)].std(axis=0).max() < 15
    assert occluded > 0


def test_coco_splits_hold_both_categories(coco_splits):
    for coco in coco_splits.values():
        assert {a['category_id'] for a in coco.dataset['annotations']} == {1, 2}


@pytest.mark.parametrize('seed', range(4))
def test_tiny_coco_splits_hold_both_categories(tmp_path, seed):
    out = make_coco(tmp_path, num_train=2, num_val=2, num_heldout=2, seed=seed)
    for split in ('train', 'val', 'heldout'):
        data = json.loads((out / 'annotations' / f'instances_{split}.json').read_text())
        assert {a['category_id'] for a in data['annotations']} == {1, 2}


def test_coco_ids_unique_and_splits_disjoint(coco_dir, coco_splits):
    """train, val (reports results) and heldout (ranks search candidates) share no image."""
    out = coco_dir
    data = {split: coco.dataset for split, coco in coco_splits.items()}
    for split_data in data.values():
        ids = [a['id'] for a in split_data['annotations']]
        assert len(ids) == len(set(ids))
        assert len({i['id'] for i in split_data['images']}) == len(split_data['images'])

    def digests(split):
        return {hashlib.sha256((out / split / i['file_name']).read_bytes()).hexdigest()
                for i in data[split]['images']}
    images = {split: {i['id'] for i in data[split]['images']} for split in data}
    names = {split: {i['file_name'] for i in data[split]['images']} for split in data}
    pixels = {split: digests(split) for split in data}
    assert {split: len(pixels[split]) for split in data} == {'train': 64, 'val': 16, 'heldout': 16}
    for a, b in (('train', 'val'), ('train', 'heldout'), ('val', 'heldout')):
        assert not images[a] & images[b] and not names[a] & names[b] and not pixels[a] & pixels[b]


def test_coco_scales_object_sizes(tmp_path):
    coco = json.loads((make_coco(tmp_path / 'big', num_train=6, num_val=1, image_size=256)
                       / 'annotations' / 'instances_train.json').read_text())
    full = [a['bbox'] for a in coco['annotations'] if isinstance(a['segmentation'], list)]
    assert full and all(64 <= w <= 128 and 64 <= h <= 128 for _, _, w, h in full)


def test_imagenet_layout(tmp_path):
    out = make_imagenet(tmp_path / 'inet', num_classes=4, per_class=3, num_val_per_class=2)
    classes = ['cross', 'disc', 'square', 'triangle']
    for split, count in (('train', 3), ('val', 2)):
        assert sorted(p.name for p in (out / split).iterdir()) == classes
        for name in classes:
            images = sorted((out / split / name).glob('*.png'))
            assert len(images) == count
            assert all(Image.open(p).size == (64, 64) for p in images)
    assert _files(out) == _files(make_imagenet(tmp_path / 'again', 4, 3, 2))


def test_bad_parameters_raise(tmp_path):
    with pytest.raises(NasError, match='num_classes'):
        make_imagenet(tmp_path / 'a', num_classes=99)
    with pytest.raises(NasError, match='num_train'):
        make_coco(tmp_path / 'b', num_train=0)
    assert not (tmp_path / 'a').exists() and not (tmp_path / 'b').exists()


def make_toy_data(*args) -> int:
    """tools/make_toy_data.py's main in this process."""
    return tool_main('make_toy_data')([str(arg) for arg in args])


def test_cli_is_idempotent(tmp_path, caplog):
    out = tmp_path / 'toy'
    args = ['coco', out, '--num-train', 4, '--num-val', 2]
    assert make_toy_data(*args) == 0
    assert (out / MANIFEST_NAME).is_file()
    before = _mtimes(out)
    caplog.clear()
    with caplog.at_level('INFO'):
        assert make_toy_data(*args) == 0
    assert caplog.messages == [f'toy data already present at {out}']
    assert _mtimes(out) == before


def test_cli_refuses_other_content_in_one_line(tmp_path):
    """The one subprocess of the tool: its error is one line and exit status 2."""
    (tmp_path / 'notes.txt').write_text('mine')
    result = _run_cli('imagenet', tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: ') and str(tmp_path) in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ['notes.txt']


def test_cli_refuses_other_parameters(tmp_path):
    assert make_toy_data('coco', tmp_path, '--num-train', 2, '--num-val', 1) == 0
    before = _mtimes(tmp_path)
    with pytest.raises(NasError, match='other parameters') as error:
        make_toy_data('coco', tmp_path, '--num-train', 2, '--num-val', 1, '--seed', 1)
    assert '\n' not in str(error.value)
    assert _mtimes(tmp_path) == before


def test_cli_fills_an_empty_directory(tmp_path):
    assert make_toy_data('imagenet', tmp_path, '--per-class', 1, '--num-val-per-class', 1) == 0
    assert len(list(tmp_path.glob('train/*/*.png'))) == 4


def test_tasks_declare_their_layouts():
    # The tool finds its layouts as entry points (pyproject.toml); the core names none of them.
    from nas_tasks.modules import load_toy_data_layout, toy_data_layouts
    assert list(toy_data_layouts()) == ['cifar10', 'cityscapes', 'coco', 'imagenet']
    assert load_toy_data_layout('coco').make.__module__ == 'detection.toy_data'
    assert load_toy_data_layout('cifar10').make.__module__ == 'gan.toy_data'
    with pytest.raises(NasError, match="no toy data layout 'pascal'; the installed ones are: "
                                       'cifar10, cityscapes, coco, imagenet'):
        load_toy_data_layout('pascal')


def test_cli_lists_every_registered_layout():
    result = _run_cli('--help')
    assert result.returncode == 0, result.stderr
    assert '{cifar10,cityscapes,coco,imagenet}' in result.stdout


def test_cli_layout_help_lists_its_options(capsys):
    with pytest.raises(SystemExit) as done:
        make_toy_data('cityscapes', '--help')
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert 'Cityscapes layout' in out and '--height' in out


def test_cli_write_error_is_one_line(tmp_path):
    (tmp_path / 'a_file').write_text('')
    with pytest.raises(NasError) as error:
        make_toy_data('imagenet', tmp_path / 'a_file' / 'toy')
    assert str(error.value).startswith('cannot write the imagenet toy data')
    assert '\n' not in str(error.value)
