"""The toy IS classifier: trained by the project's own code, it tells real toy images from noise."""
import pytest
import torch

from conftest import one_torch_thread, run_tool
from gan.metrics import InceptionScore, build_feature_extractor
from gan.toy_classifier import (MIN_TEST_ACCURACY, WEIGHTS_FILE, read_record, record_path,
                                train_toy_classifier)
from gan.cifar10_batches import FOLDER, CIFAR10PythonBatches
from nas_tasks.errors import NasError

NUM_CLASSES = 10


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    with one_torch_thread():
        yield


def toy_extractor(root):
    return build_feature_extractor(dict(type='ToyClassifier', weights_path=str(root / WEIGHTS_FILE),
                                        num_classes=NUM_CLASSES, width=32))


def test_is_of_real_toy_images_is_close_to_the_number_of_classes(toy_cifar10):
    record = read_record(toy_cifar10 / WEIGHTS_FILE)
    assert record['test_accuracy'] >= MIN_TEST_ACCURACY
    test = torch.from_numpy(CIFAR10PythonBatches(toy_cifar10, train=False).data).permute(0, 3, 1, 2)
    # 200 test images, classes in turn: every split of 20 holds each class twice.
    mean, std = InceptionScore(toy_extractor(toy_cifar10), splits=10).of_batches(test.split(100))
    print(f'IS of the real toy test images: {mean:.3f} +- {std:.3f} '
          f'(test accuracy {record["test_accuracy"]:.3f})')
    assert 8 < mean <= NUM_CLASSES


def test_is_of_noise_is_close_to_one(toy_cifar10):
    generator = torch.Generator().manual_seed(1)
    score = InceptionScore(toy_extractor(toy_cifar10), num_images=500, splits=10)
    uniform, _ = score(lambda n: torch.rand(n, 3, 32, 32, generator=generator) * 2 - 1)
    gaussian, _ = score(lambda n: (0.5 * torch.randn(n, 3, 32, 32, generator=generator)).clamp(-1, 1))
    print(f'IS of noise: uniform {uniform:.3f}, gaussian {gaussian:.3f}')
    assert 1 <= uniform < 1.5 and 1 <= gaussian < 1.5


def test_same_seed_same_weights_and_global_rng_untouched(toy_cifar10, tmp_path):
    # One epoch, floor off: determinism does not need a good classifier.
    def train(name, seed):
        path = train_toy_classifier(toy_cifar10, tmp_path / name, epochs=1, seed=seed,
                                    min_accuracy=0)
        return torch.load(path, weights_only=True)

    rng_before = torch.get_rng_state()
    first, again = train('a.pth', 0), train('b.pth', 0)
    assert torch.equal(torch.get_rng_state(), rng_before)
    # Retrains over b.pth: the record's parameters differ.
    other = train('b.pth', 1)
    assert read_record(tmp_path / 'b.pth')['params']['seed'] == 1
    assert any(not torch.equal(first[key], other[key]) for key in first)
    assert all(torch.equal(first[key], again[key]) for key in first)


def test_second_run_of_the_tool_trains_nothing(toy_cifar10):
    # The tool runs with torch's default threads: it finds the record and trains nothing.
    weights = toy_cifar10 / WEIGHTS_FILE
    stamps = weights.stat().st_mtime_ns, record_path(weights).stat().st_mtime_ns
    result = run_tool(['python', 'tools/train_toy_classifier.py', str(toy_cifar10)], check=True)
    accuracy = read_record(weights)['test_accuracy']
    assert f'test accuracy {accuracy:.4f}' in result.stdout
    assert result.stdout.strip().splitlines()[-1] == str(weights)
    assert (weights.stat().st_mtime_ns, record_path(weights).stat().st_mtime_ns) == stamps


def test_missing_or_broken_data_is_one_line(tmp_path):
    result = run_tool(['python', 'tools/train_toy_classifier.py', str(tmp_path)])
    assert result.returncode == 2
    assert result.stderr.strip().count('\n') == 0 and 'make_toy_data.py cifar10' in result.stderr
    (tmp_path / FOLDER).mkdir()
    with pytest.raises(NasError) as info:
        train_toy_classifier(tmp_path)
    assert '\n' not in str(info.value) and FOLDER in str(info.value)
    assert not (tmp_path / WEIGHTS_FILE).exists()


def test_a_poor_classifier_is_refused(toy_cifar10, tmp_path):
    out = tmp_path / 'poor.pth'
    with pytest.raises(NasError, match='test accuracy.*--epochs'):
        train_toy_classifier(toy_cifar10, out, epochs=1)
    assert not out.exists() and not record_path(out).exists()
