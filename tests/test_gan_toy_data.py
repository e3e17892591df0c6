"""The toy CIFAR-10: real python-batch format, read by torchvision's code without its MD5 checks."""
import argparse
import pickle

import numpy as np
import pytest
import torchvision

from gan.cifar10_batches import FOLDER, CIFAR10PythonBatches
from gan.toy_data import CLASS_NAMES, make_cifar10
from nas_tasks.errors import NasError
from nas_tasks.modules import load_toy_data_layout


@pytest.fixture(scope='module')
def toy_root(tmp_path_factory):
    return make_cifar10(tmp_path_factory.mktemp('cifar'), train_per_class=3, test_per_class=2)


def test_torchvision_reads_it_without_the_real_files_checksums(toy_root):
    # torchvision's own class refuses any data but the real CIFAR-10 (MD5 checks).
    with pytest.raises(RuntimeError, match='corrupted'):
        torchvision.datasets.CIFAR10(toy_root, train=True, download=False)
    train = CIFAR10PythonBatches(toy_root, train=True)
    test = CIFAR10PythonBatches(toy_root, train=False)
    assert len(train) == 30 and len(test) == 20
    assert train.classes == list(CLASS_NAMES)
    assert sorted(set(train.targets)) == list(range(10))
    image, label = train[0]
    assert image.size == (32, 32) and image.mode == 'RGB' and label == 0


def test_batches_load_with_byte_keys_like_the_real_files(toy_root):
    with open(toy_root / FOLDER / 'data_batch_1', 'rb') as f:
        batch = pickle.load(f, encoding='bytes')
    assert batch[b'data'].dtype == np.uint8 and batch[b'data'].shape[1] == 3072
    assert len(batch[b'labels']) == batch[b'data'].shape[0]
    with open(toy_root / FOLDER / 'batches.meta', 'rb') as f:
        assert pickle.load(f, encoding='bytes')[b'label_names'][0] == b'warm square'


def test_classes_differ_and_output_is_deterministic(toy_root, tmp_path):
    train = CIFAR10PythonBatches(toy_root)
    again = CIFAR10PythonBatches(make_cifar10(tmp_path, 3, 2))
    np.testing.assert_array_equal(train.data, again.data)
    # The two colour families differ in mean hue: warm images are redder.
    labels = np.array(train.targets)
    red_minus_blue = train.data[..., 0].astype(float) - train.data[..., 2]
    reddest = red_minus_blue.max(axis=(1, 2))
    assert reddest[labels < 5].mean() > reddest[labels >= 5].mean()


def test_registered_layout_and_bad_arguments(tmp_path):
    layout = load_toy_data_layout('cifar10')
    parser = argparse.ArgumentParser()
    layout.add_arguments(parser)
    args = parser.parse_args(['--train-per-class', '1', '--test-per-class', '1'])
    args.out_dir = tmp_path / 'out'
    assert (layout.make(args) / FOLDER / 'test_batch').is_file()
    with pytest.raises(NasError):
        make_cifar10(tmp_path / 'bad', train_per_class=0)
