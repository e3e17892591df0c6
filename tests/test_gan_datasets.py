"""The real images of a GAN: a folder of one's own images, CIFAR-10's layout named where a file
is not in it, and the search's real data served per rank through a DataLoader."""
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import assert_one_line, tool_main
from gan.autogan.real_data import RankSliceBatches, build_real_data
from gan.cifar10_batches import FOLDER, CIFAR10PythonBatches
from gan.datasets import GANImages
from gan.toy_data import make_cifar10
from nas_tasks import dist
from nas_tasks.errors import NasError


@pytest.fixture(scope='module')
def toy_root(tmp_path_factory):
    return make_cifar10(tmp_path_factory.mktemp('cifar'), train_per_class=2, test_per_class=1)


def write_image(path, colour, size=(20, 12)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new('RGB', size, colour).save(path)


# --- a folder of images ----------------------------------------------------------------------

def test_a_folder_source_reads_every_png_and_jpeg_at_any_depth_in_path_order(tmp_path):
    write_image(tmp_path / 'b' / 'deep' / 'x.PNG', (255, 0, 0))
    write_image(tmp_path / 'a.jpg', (0, 0, 255))
    write_image(tmp_path / 'c.jpeg', (255, 255, 255), size=(8, 8))
    grey = tmp_path / 'b' / 'grey.png'
    Image.new('L', (16, 16), 0).save(grey)  # one channel: read as RGB
    (tmp_path / 'notes.txt').write_text('not an image')
    images = GANImages(source='folder', data_root=str(tmp_path), img_size=16)
    assert len(images) == 4
    # Sorted paths: a.jpg, b/deep/x.PNG, b/grey.png, c.jpeg; resized to 16 px, in [-1, 1].
    items = [images[i]['images'] for i in range(4)]
    assert all(item.shape == (3, 16, 16) for item in items)
    means = [item.mean(dim=(1, 2)).tolist() for item in items]
    assert means[0] == pytest.approx([-1, -1, 1], abs=0.02)  # blue (JPEG: nearly)
    assert means[1] == pytest.approx([1, -1, -1])  # red
    assert means[2] == pytest.approx([-1, -1, -1])  # black
    assert means[3] == pytest.approx([1, 1, 1])  # white
    # The FID's real side reads the same images as uint8.
    [pixels] = images.uint8_batches(batch_size=10)
    assert pixels.shape == (4, 3, 16, 16) and pixels.dtype == torch.uint8


def test_a_folder_without_images_or_with_a_broken_one_is_one_line(tmp_path):
    (tmp_path / 'empty' / 'sub').mkdir(parents=True)
    with pytest.raises(NasError) as error:
        len(GANImages(source='folder', data_root=str(tmp_path / 'empty')))
    assert_one_line(str(error.value), 'no PNG or JPEG images under', str(tmp_path / 'empty'))
    with pytest.raises(NasError) as error:
        len(GANImages(source='folder', data_root=str(tmp_path / 'missing')))
    assert_one_line(str(error.value), 'no image folder at', str(tmp_path / 'missing'))
    broken = tmp_path / 'broken' / 'x.png'
    broken.parent.mkdir()
    broken.write_bytes(b'not a png')
    with pytest.raises(NasError) as error:
        GANImages(source='folder', data_root=str(broken.parent))[0]
    assert_one_line(str(error.value), f'cannot read the image {broken}')


# --- CIFAR-10's python-batch layout ------------------------------------------------------------

def copy_of_toy_set(toy_root, tmp_path):
    root = tmp_path / 'data'
    (root / FOLDER).mkdir(parents=True)
    for path in (toy_root / FOLDER).iterdir():
        (root / FOLDER / path.name).write_bytes(path.read_bytes())
    return root


@pytest.mark.parametrize('record, expected', [
    # A user's own batch, pickled by Python 3: its keys stay bytes (torchvision: KeyError: 'data').
    ({b'data': np.zeros((2, 3072), np.uint8), b'labels': [0, 1]},
     "has the key b'data' (bytes) where CIFAR-10's layout has 'data'"),
    ({'images': np.zeros((2, 3072), np.uint8), 'labels': [0, 1]},
     "has no 'data' (its keys: 'images', 'labels'); a CIFAR-10 batch holds 'data' and 'labels'"),
    ([1, 2, 3], 'holds a list, not the dict of a CIFAR-10 batch'),
])
def test_a_batch_file_not_in_cifar_layout_is_one_line_naming_it(toy_root, tmp_path, record, expected):
    root = copy_of_toy_set(toy_root, tmp_path)
    bad = root / FOLDER / 'data_batch_3'
    bad.write_bytes(pickle.dumps(record))
    with pytest.raises(NasError) as error:
        CIFAR10PythonBatches(root, train=True)
    assert_one_line(str(error.value), str(bad), expected, 'make_toy_data.py cifar10')
    # The test split does not read that file.
    assert len(CIFAR10PythonBatches(root, train=False)) == 10
    # The same line from GANImages and from the toy classifier's tool (its KeyError traceback before).
    with pytest.raises(NasError) as from_dataset:
        len(GANImages(source='cifar10_batches', data_root=str(root)))
    with pytest.raises(NasError) as from_tool:
        tool_main('train_toy_classifier')([str(root)])
    assert str(from_dataset.value) == str(from_tool.value) == str(error.value)


def test_a_missing_batch_file_is_named(toy_root, tmp_path):
    root = copy_of_toy_set(toy_root, tmp_path)
    (root / FOLDER / 'batches.meta').unlink()
    with pytest.raises(NasError) as error:
        CIFAR10PythonBatches(root)
    assert_one_line(str(error.value), f'{root / FOLDER} has no batches.meta', 'make_toy_data.py')


# --- the search's real data --------------------------------------------------------------------

def toy_real_data(toy_root, workers=0):
    return build_real_data(dict(type='GANImages', source='cifar10_batches', data_root=str(toy_root)),
                           num_workers=workers, pin_memory=False)


def test_real_data_serves_seeded_batches_at_the_stage_size_with_or_without_workers(toy_root):
    real_data = toy_real_data(toy_root)
    first = next(real_data(8, 4, seed=5))
    assert first.shape == (4, 3, 8, 8) and first.min() >= -1 and first.max() <= 1 and first.std() > 0.1
    assert torch.equal(first, next(real_data(8, 4, seed=5)))
    assert not torch.equal(first, next(real_data(8, 4, seed=6)))
    batches = real_data(32, 4, seed=5)
    in_workers = toy_real_data(toy_root, workers=2)(32, 4, seed=5)
    # 20 images, 5 batches an epoch: the second epoch draws a new order, the same in the workers.
    for _ in range(7):
        assert torch.equal(next(batches), next(in_workers))


def test_each_rank_loads_its_slice_of_the_batch_one_process_loads(toy_root, monkeypatch):
    real_data = toy_real_data(toy_root)
    whole = [batch for batch, _ in zip(real_data(16, 4, seed=1), range(6))]
    assert len({float(batch.sum()) for batch in whole}) == 6
    monkeypatch.setattr(dist, 'get_world_size', lambda: 2)
    slices = []
    for rank in range(2):
        monkeypatch.setattr(dist, 'get_rank', lambda rank=rank: rank)
        slices.append([batch for batch, _ in zip(real_data(16, 4, seed=1), range(6))])
    for step, batch in enumerate(whole):
        assert slices[0][step].shape == (2, 3, 16, 16)
        assert torch.equal(torch.cat([slices[0][step], slices[1][step]]), batch)


def test_real_data_that_is_no_dataset_config_or_smaller_than_a_batch_is_one_line(toy_root):
    with pytest.raises(NasError) as error:
        build_real_data(dict(root=str(toy_root), train=True), 0, False)  # the form before datasets
    assert_one_line(str(error.value), 'estimator.real_data must be a dataset config',
                    "dict(type='GANImages', source='cifar10'")
    with pytest.raises(NasError, match='holds 20 images, fewer than a batch of 32'):
        RankSliceBatches(20, 32, seed=0)


def test_a_broken_image_read_in_a_loader_worker_is_one_line(tmp_path):
    for index in range(4):
        write_image(tmp_path / f'{index}.png', (index * 60, 0, 0))
    (tmp_path / '2.png').write_bytes(b'not a png')
    real_data = build_real_data(dict(type='GANImages', source='folder', data_root=str(tmp_path)),
                                num_workers=1, pin_memory=False)
    with pytest.raises(NasError) as error:
        next(real_data(8, 4, seed=0))
    assert str(error.value).startswith(f'cannot read the image {tmp_path / "2.png"}: ')
    assert_one_line(str(error.value), 'replace it with a PNG or JPEG image')
