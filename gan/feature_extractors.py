"""The IS/FID networks of :data:`gan.metrics.GAN_FEATURE_EXTRACTORS`: torch-fidelity modules.

Imported by the registry (its ``locations``) when the first extractor is
built, so importing the task imports no torch-fidelity.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.feature_extractor_inceptionv3 import (URL_INCEPTION_V3,
                                                          FeatureExtractorInceptionV3)

from gan.metrics import GAN_FEATURE_EXTRACTORS, ToyClassifier, dequantise
from nas_tasks.errors import NasError

INCEPTION_WEIGHTS_FILE = URL_INCEPTION_V3.rsplit('/', 1)[-1]


@GAN_FEATURE_EXTRACTORS.register_module(name='InceptionV3Compat')
def inception_v3_compat(weights_path: str | None = None) -> FeatureExtractorInceptionV3:
    """torch-fidelity's ``inception-v3-compat`` from a local copy of its weights."""
    if weights_path is None or not Path(weights_path).is_file():
        where = f'put it at {weights_path}' if weights_path else "set the extractor's weights_path"
        raise NasError(f'Inception weights not found: download {INCEPTION_WEIGHTS_FILE} '
                       f'(torch-fidelity {URL_INCEPTION_V3}) and {where}')
    return FeatureExtractorInceptionV3('inception-v3-compat', ['logits_unbiased', '2048'],
                                       feature_extractor_weights_path=str(weights_path))



@GAN_FEATURE_EXTRACTORS.register_module(name='ToyClassifier')
class ToyClassifierExtractor(FeatureExtractorBase):
    """A trained :class:`ToyClassifier` as an IS (``logits``) / FID (``pool``) extractor."""

    def __init__(self, weights_path: str | None = None, num_classes: int = 10, width: int = 32):
        super().__init__('toy-classifier', ['pool', 'logits'])
        if weights_path is None or not Path(weights_path).is_file():
            raise NasError(f'toy classifier weights not found: {weights_path}; '
                           'train the classifier on the toy data first')
        self.classifier = ToyClassifier(num_classes, width)
        self.classifier.load_state_dict(torch.load(weights_path, map_location='cpu'))

    @staticmethod
    def get_provided_features_list():
        return 'pool', 'logits'

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {'isc': 'logits', 'fid': 'pool'}[metric]

    @staticmethod
    def can_be_compiled():
        return False

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.classifier(dequantise(x))
