"""Inception Score and FID of generated images, through torch-fidelity.

The IS/FID network is a registered component of
:data:`GAN_FEATURE_EXTRACTORS`, built once and shared by every metric of a
run: torch-fidelity's TF-compatible Inception (``InceptionV3Compat``, weights
from a local file, nothing downloaded) or a small classifier trained on the toy
data (``ToyClassifier``). Both are torch-fidelity ``FeatureExtractorBase``
modules that take uint8 ``B x 3 x H x W`` batches and name their IS and FID
layers through ``get_default_feature_layer_for_metric``, so the toy search is
scored through the same code path as the real one. They live in
:mod:`gan.feature_extractors`, imported (with torch-fidelity) when the first
extractor is built: importing the task imports no torch-fidelity.

The arithmetic is torch-fidelity's own (``isc_features_to_metric``,
``fid_features_to_statistics``, ``fid_statistics_to_metric``); this module only
feeds it: generator output is quantised as the official AutoGAN code does and
goes to the extractor in batches, without a round trip through image files.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.registry import DefaultScope, Registry
from torch import nn

from nas_tasks.errors import NasError
from nas_tasks.io import atomic_write

if TYPE_CHECKING:
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase

GAN_FEATURE_EXTRACTORS = Registry('GAN feature extractor', scope='nas_tasks',
                                  locations=['gan.feature_extractors'])

# A generator callable: ``sample(n)`` returns n images in [-1, 1], n x 3 x H x W.
Sampler = Callable[[int], torch.Tensor]


def build_feature_extractor(cfg: dict, device: str | torch.device = 'cpu') -> FeatureExtractorBase:
    """The extractor ``cfg`` names, on ``device``, frozen in eval mode."""
    # The registry's own scope: under a run's (mmengine's in a GAN training Runner)
    # mmengine would warn that this registry has no such child.
    with DefaultScope.overwrite_default_scope('nas_tasks'):
        extractor = GAN_FEATURE_EXTRACTORS.build(cfg)
    return extractor.to(device).requires_grad_(False).eval()


class ToyClassifier(nn.Module):
    """A small CNN for the toy CIFAR-10 classes; returns (pooled features, logits).

    Takes float images in [-1, 1]; any size, resized to 32 x 32.
    """

    IMAGE_SIZE = 32

    def __init__(self, num_classes: int = 10, width: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 4 * width, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.shape[-2:] != (self.IMAGE_SIZE, self.IMAGE_SIZE):
            # Search stages generate 8 and 16 px images; Inception upsamples them too.
            x = F.interpolate(x, size=(self.IMAGE_SIZE, self.IMAGE_SIZE), mode='bilinear',
                              align_corners=False)
        pooled = self.features(x)
        return pooled, self.head(pooled)


# --- feeding the extractor ---

def quantise(images: torch.Tensor) -> torch.Tensor:
    """Generator output in [-1, 1] to uint8 as the official code does: truncating, not rounding."""
    return (images * 127.5 + 127.5).clamp(0, 255).to(torch.uint8)


def dequantise(images: torch.Tensor) -> torch.Tensor:
    """uint8 images to floats in [-1, 1]: what the toy classifier sees, in training as in IS."""
    return images.float() / 127.5 - 1


def generated_batches(sample: Sampler, num_images: int, batch_size: int) -> Iterator[torch.Tensor]:
    """``num_images`` quantised images from ``sample``, ``batch_size`` at a time."""
    for start in range(0, num_images, batch_size):
        with torch.no_grad():
            yield quantise(sample(min(batch_size, num_images - start)))


def extract_features(extractor: FeatureExtractorBase, batches: Iterable[torch.Tensor],
                     metric: str) -> torch.Tensor:
    """The ``metric``'s ('isc' or 'fid') layer for all uint8 ``batches``, on the CPU."""
    return extract_layers(extractor, batches, (metric,))[metric]


def extract_layers(extractor: FeatureExtractorBase, batches: Iterable[torch.Tensor],
                   metrics: tuple[str, ...] = ('isc', 'fid')) -> dict[str, torch.Tensor]:
    """The layer of each of ``metrics`` for all uint8 ``batches``, from one pass, on the CPU."""
    layers = {metric: extractor.get_default_feature_layer_for_metric(metric) for metric in metrics}
    device = next(extractor.parameters(), torch.empty(0)).device
    parts: dict[str, list[torch.Tensor]] = {metric: [] for metric in metrics}
    with torch.no_grad():
        for batch in batches:
            features = extractor.convert_features_tuple_to_dict(extractor(batch.to(device)))
            for metric, layer in layers.items():
                parts[metric].append(features[layer].cpu())
    return {metric: torch.cat(tensors) for metric, tensors in parts.items()}


# --- Inception Score ---

class InceptionScore:
    """IS (mean, std over ``splits`` sequential splits) of a generator's images."""

    def __init__(self, extractor: FeatureExtractorBase, num_images: int = 5000,
                 batch_size: int = 100, splits: int = 10):
        self.extractor = extractor
        self.num_images = num_images
        self.batch_size = batch_size
        self.splits = splits

    def __call__(self, sample: Sampler) -> tuple[float, float]:
        return self.of_batches(generated_batches(sample, self.num_images, self.batch_size))

    def of_batches(self, batches: Iterable[torch.Tensor]) -> tuple[float, float]:
        """IS of given uint8 images, e.g. real ones."""
        return self.of_features(extract_features(self.extractor, batches, 'isc'))

    def of_features(self, logits: torch.Tensor) -> tuple[float, float]:
        """IS of images whose IS-layer features (logits) are given."""
        from torch_fidelity.metric_isc import (KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD,
                                               isc_features_to_metric)

        # The official code splits in order, without shuffling.
        score = isc_features_to_metric(logits, splits=self.splits, shuffle=False)
        return score[KEY_METRIC_ISC_MEAN], score[KEY_METRIC_ISC_STD]


# --- FID ---

def statistics_of(features: torch.Tensor) -> dict[str, np.ndarray]:
    from torch_fidelity.metric_fid import fid_features_to_statistics

    # float64 features give float64 mu and sigma, the dtype TTUR's files hold.
    return fid_features_to_statistics(features.double())


def load_statistics(path: str | Path) -> dict[str, np.ndarray]:
    """FID statistics from a TTUR-format ``.npz`` (arrays ``mu`` and ``sigma``)."""
    with np.load(path) as stats:
        if 'mu' not in stats or 'sigma' not in stats:
            raise NasError(f'{path} holds no FID statistics: expected arrays mu and sigma '
                           f'(TTUR format), found {", ".join(stats.files)}')
        return {'mu': stats['mu'].astype(np.float64), 'sigma': stats['sigma'].astype(np.float64)}


def save_statistics(path: str | Path, stats: dict[str, np.ndarray]) -> None:
    atomic_write(path, lambda f: np.savez(f, mu=stats['mu'], sigma=stats['sigma']))


def statistics_path(data_root: str | Path, extractor: FeatureExtractorBase, split: str) -> Path:
    """Where the real-data statistics of ``split`` are cached, beside the data."""
    return Path(data_root) / f'fid_stats_{extractor.get_name()}_{split}.npz'


class FrechetInceptionDistance:
    """FID of a generator's images against real-data statistics.

    The real statistics are read from ``stats_path`` if it exists (ours or a
    TTUR ``.npz``); otherwise computed once from ``real_batches()`` (uint8
    batches) and written there. Delete the file after changing the data.
    """

    def __init__(self, extractor: FeatureExtractorBase, stats_path: str | Path,
                 real_batches: Callable[[], Iterable[torch.Tensor]] | None = None,
                 num_images: int = 50000, batch_size: int = 100):
        self.extractor = extractor
        self.stats_path = Path(stats_path)
        self.real_batches = real_batches
        self.num_images = num_images
        self.batch_size = batch_size
        self._real: dict[str, np.ndarray] | None = None

    def real_statistics(self) -> dict[str, np.ndarray]:
        if self._real is None:
            self._real = self._load_or_compute_real()
        return self._real

    def _load_or_compute_real(self) -> dict[str, np.ndarray]:
        if self.stats_path.exists():
            return load_statistics(self.stats_path)
        if self.real_batches is None:
            raise NasError(f'FID statistics not found: {self.stats_path}; '
                           'give a TTUR-format .npz there or the real data to compute them')
        stats = statistics_of(extract_features(self.extractor, self.real_batches(), 'fid'))
        save_statistics(self.stats_path, stats)
        return stats

    def __call__(self, sample: Sampler) -> float:
        return self.of_batches(generated_batches(sample, self.num_images, self.batch_size))

    def of_batches(self, batches: Iterable[torch.Tensor]) -> float:
        """FID of given uint8 images against the real statistics."""
        return self.of_features(extract_features(self.extractor, batches, 'fid'))

    def of_features(self, features: torch.Tensor) -> float:
        """FID of images whose FID-layer features are given, against the real statistics."""
        from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric

        real = self.real_statistics()
        fake = statistics_of(features)
        if real['mu'].shape != fake['mu'].shape:
            raise NasError(f'FID statistics {self.stats_path} have {real["mu"].shape[0]} '
                           f'features, the extractor gives {fake["mu"].shape[0]}')
        return fid_statistics_to_metric(real, fake, verbose=False)[KEY_METRIC_FID]
