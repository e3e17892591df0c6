"""Trains the small classifier that stands in for Inception on the toy CIFAR-10.

The Inception Score needs a classifier whose classes the images belong to.
Inception's ImageNet classes mean nothing for shapes on noise (and its weights
cannot be downloaded here), so the toy AutoGAN search scores through
:class:`gan.metrics.ToyClassifier`, trained here on the toy data's train split.
With it, real toy images score close to the number of classes and noise
close to 1, as real CIFAR-10 and noise do through Inception.

``train_toy_classifier(data_root)`` writes ``data_root/toy_classifier.pth``
(a state_dict) and, last, ``toy_classifier.json`` beside it with the training
parameters, a fingerprint of the training images and the test accuracy. A
second call with the same parameters on the same data finds that record and
trains nothing, as ``tools/make_toy_data.py`` does for the data.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gan.metrics import ToyClassifier, dequantise
from gan.cifar10_batches import FOLDER, CIFAR10PythonBatches
from nas_tasks.errors import NasError
from nas_tasks.io import atomic_torch_save, atomic_write_json

logger = logging.getLogger(__name__)

WEIGHTS_FILE = 'toy_classifier.pth'
# A classifier this poor would make the IS of real images meaningless.
MIN_TEST_ACCURACY = 0.9
# Bump when the training changes, so an old classifier is not taken for a new one.
TRAINER_VERSION = 1


def train_toy_classifier(data_root, out_path=None, epochs: int = 30, width: int = 32,
                         seed: int = 0, batch_size: int = 25, lr: float = 3e-3,
                         noise_images: int = 5, noise_weight: float = 0.1,
                         min_accuracy: float = MIN_TEST_ACCURACY) -> Path:
    """Trains (or finds) the toy IS classifier on ``data_root``'s CIFAR-10 train split.

    Adam at ``lr``, divided by 10 for the last quarter of the epochs. Each batch
    also holds ``noise_images`` uniform-noise images whose target is the
    uniform distribution over the classes, weighted by ``noise_weight`` (see
    :func:`_train`). A test accuracy below ``min_accuracy`` is refused.
    Returns the weights file, ``out_path`` or
    ``data_root/toy_classifier.pth``. The same arguments on the same data give
    identical weights; the global RNG is left as it was.
    """
    root = Path(data_root)
    out = Path(out_path) if out_path is not None else root / WEIGHTS_FILE
    if epochs < 1 or width < 1 or batch_size < 1 or lr <= 0 or noise_images < 0:
        raise NasError(f'epochs, width and batch_size must be >= 1, lr > 0 and noise_images '
                       f'>= 0, got epochs={epochs} width={width} batch_size={batch_size} '
                       f'lr={lr} noise_images={noise_images}')
    train, test = _read_splits(root)
    params = {'version': TRAINER_VERSION, 'epochs': epochs, 'width': width, 'seed': seed,
              'batch_size': batch_size, 'lr': lr, 'noise_images': noise_images,
              'noise_weight': noise_weight, 'num_classes': len(train.classes),
              'train_images': _fingerprint(train)}
    record = read_record(out)
    if out.is_file() and record is not None and record.get('params') == params:
        _check_accuracy(record['test_accuracy'], min_accuracy, root)
        logger.info('toy classifier already trained: %s (test accuracy %.3f)',
                    out, record['test_accuracy'])
        return out

    model = _train(_images(train.data), torch.tensor(train.targets), params)
    accuracy = _accuracy(model, _images(test.data), torch.tensor(test.targets))
    _check_accuracy(accuracy, min_accuracy, root)
    # An old record must not vouch for the new weights if we stop between the two writes.
    record_path(out).unlink(missing_ok=True)
    atomic_torch_save(model.state_dict(), out)
    # Written last: a record means the weights beside it are complete.
    atomic_write_json(record_path(out), {'params': params, 'test_accuracy': accuracy})
    logger.info('trained the toy classifier: test accuracy %.3f, saved to %s', accuracy, out)
    return out


def record_path(weights_path) -> Path:
    """The JSON record beside a weights file: ``toy_classifier.pth`` -> ``toy_classifier.json``."""
    return Path(weights_path).with_suffix('.json')


def read_record(weights_path) -> dict | None:
    """The training record of ``weights_path`` (params, test_accuracy), or None if absent."""
    path = record_path(weights_path)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _check_accuracy(accuracy: float, min_accuracy: float, root: Path) -> None:
    if accuracy < min_accuracy:
        raise NasError(f'the toy classifier reached only {accuracy:.3f} test accuracy on {root} '
                       f'(at least {min_accuracy} needed); train longer (--epochs) or give '
                       'more training images (make_toy_data.py cifar10 --train-per-class)')


def _read_splits(root: Path) -> tuple[CIFAR10PythonBatches, CIFAR10PythonBatches]:
    if not (root / FOLDER).is_dir():
        raise NasError(f'no CIFAR-10 at {root / FOLDER}: write the toy set with '
                       f'`python tools/make_toy_data.py cifar10 {root}` or point at a real copy')
    try:
        return CIFAR10PythonBatches(root, train=True), CIFAR10PythonBatches(root, train=False)
    except OSError as error:
        raise NasError(f'cannot read CIFAR-10 at {root / FOLDER} ({error}); '
                       'write it again with tools/make_toy_data.py cifar10') from None


def _fingerprint(dataset: CIFAR10PythonBatches) -> str:
    """A short hash of the training images and labels: new data means a new classifier."""
    digest = hashlib.sha256(np.ascontiguousarray(dataset.data).tobytes())
    digest.update(np.asarray(dataset.targets, dtype=np.int64).tobytes())
    return digest.hexdigest()[:16]


def _images(data: np.ndarray) -> torch.Tensor:
    """CIFAR's N x H x W x 3 uint8 array as the classifier sees it: N x 3 x H x W in [-1, 1],
    through the toy extractor's own conversion."""
    return dequantise(torch.from_numpy(data).permute(0, 3, 1, 2))


def _train(images: torch.Tensor, labels: torch.Tensor, params: dict) -> ToyClassifier:
    """Adam on cross-entropy, plus a small outlier-exposure term on uniform noise.

    Without that term, the class a trained classifier gives noise images is an
    accident of its training: with some seeds all noise falls into one class
    (IS 1.0), with others it splits between two (IS up to 1.4). Pulling noise
    towards the uniform distribution makes the IS of noise 1 by design, and a
    generator that draws noise scores as such.
    """
    # The initial weights come from a forked global RNG, the batch order and the
    # noise from a generator of our own: the caller's random state is left untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(params['seed'])
        model = ToyClassifier(params['num_classes'], params['width'])
    generator = torch.Generator().manual_seed(params['seed'])
    optimizer = torch.optim.Adam(model.parameters(), lr=params['lr'])
    # A tenfold smaller step for the last quarter settles the weights (and the
    # test accuracy) that full-size steps leave jittering.
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, [params['epochs'] * 3 // 4], 0.1)
    uniform = torch.full((params['noise_images'], params['num_classes']), 1 / params['num_classes'])
    model.train()
    for epoch in range(params['epochs']):
        order = torch.randperm(len(images), generator=generator)
        total = 0.0
        for start in range(0, len(order), params['batch_size']):
            batch = order[start:start + params['batch_size']]
            noise = torch.randint(0, 256, (params['noise_images'], *images.shape[1:]),
                                  generator=generator, dtype=torch.uint8)
            logits = model(torch.cat([images[batch], dequantise(noise)]))[1]
            loss = F.cross_entropy(logits[:len(batch)], labels[batch])
            if params['noise_images']:
                loss = loss + params['noise_weight'] * F.cross_entropy(logits[len(batch):], uniform)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        schedule.step()
        logger.debug('epoch %d: loss %.4f', epoch + 1, total / len(images))
    return model.eval()


def _accuracy(model: ToyClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        predicted = torch.cat([model(part)[1].argmax(1) for part in images.split(500)])
    return (predicted == labels).float().mean().item()
