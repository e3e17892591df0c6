"""IS and FID of a generator's images as an mmengine metric (``val_evaluator``/``test_evaluator``).

The model's ``val_step``/``test_step`` turns a batch of latent vectors
(:class:`gan.datasets.LatentNoise`) into uint8 images; :class:`ISFIDMetric`
runs them through the feature extractor once, keeping the IS and the FID
layer of each image, and at the end of the epoch computes ``IS`` (mean over
``splits`` sequential splits), ``IS_std`` and ``FID`` through
:mod:`gan.metrics`. Under torchrun each process scores its share of the noise
and mmengine gathers the features; the number of images is the noise set's.

The extractor is built once, when the metric is (so a missing weights file
stops the run before it trains), and so are the real statistics of the FID:
read from ``fid_stats`` (ours or a TTUR ``.npz``), or computed once from
``real_data`` and cached beside it.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.registry import DATASETS, METRICS

from gan.datasets import GANImages
from gan.metrics import (FrechetInceptionDistance, InceptionScore, build_feature_extractor,
                         extract_layers, statistics_path)
from nas_tasks import dist
from nas_tasks.errors import NasError


@METRICS.register_module()
class ISFIDMetric(BaseMetric):
    """``IS``, ``IS_std`` and ``FID`` of the images the model predicts.

    Args:
        extractor: a config of ``gan.metrics.GAN_FEATURE_EXTRACTORS``, e.g.
            ``dict(type='InceptionV3Compat', weights_path=...)``.
        real_data: a :class:`~gan.datasets.GANImages` config: the images the
            FID compares with, when their statistics are not cached yet.
        fid_stats: the real statistics' file; by default
            ``<real data_root>/fid_stats_<extractor>_<split>_<size>px.npz``.
        splits: IS splits (10, as the official code).
        batch_size: images per extractor call for the real statistics.
    """

    def __init__(self, extractor: dict, real_data: dict, fid_stats: str | None = None,
                 splits: int = 10, batch_size: int = 100, collect_device: str = 'cpu',
                 prefix: str | None = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.extractor = build_feature_extractor(extractor, dist.device())
        real = DATASETS.build(real_data)
        if not isinstance(real, GANImages):
            raise NasError(f"the FID's real_data must be a GANImages config, got "
                           f"{real_data.get('type')!r}")
        stats = fid_stats or statistics_path(real.data_root, self.extractor,
                                             f'{real.split}_{real.img_size}px')
        self.inception_score = InceptionScore(self.extractor, splits=splits)
        self.fid = FrechetInceptionDistance(self.extractor, stats,
                                            lambda: real.uint8_batches(batch_size))
        if dist.is_main_process():  # only the main process computes the metrics
            self.fid.real_statistics()

    def process(self, data_batch, data_samples: Sequence[torch.Tensor]) -> None:
        images = torch.stack(list(data_samples))
        if images.dtype != torch.uint8:
            raise NasError(f'ISFIDMetric reads uint8 images, got {images.dtype}: the model must '
                           'quantise its output in predict mode')
        layers = extract_layers(self.extractor, [images], ('isc', 'fid'))
        self.results.extend(zip(layers['isc'].numpy(), layers['fid'].numpy()))

    def compute_metrics(self, results: list) -> dict[str, float]:
        logits, features = (torch.from_numpy(np.stack(column)) for column in zip(*results))
        mean, std = self.inception_score.of_features(logits)
        return {'IS': float(mean), 'IS_std': float(std), 'FID': float(self.fid.of_features(features))}
