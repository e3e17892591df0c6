"""IS and FID of gan.metrics through the registered-extractor path, with a stand-in extractor."""
import numpy as np
import pytest
import torch
from torch_fidelity.feature_extractor_base import FeatureExtractorBase

from gan.feature_extractors import INCEPTION_WEIGHTS_FILE
from gan.metrics import (GAN_FEATURE_EXTRACTORS, FrechetInceptionDistance, InceptionScore,
                         ToyClassifier, build_feature_extractor, generated_batches, quantise,
                         statistics_path)
from nas_tasks.errors import NasError

NUM_CLASSES = 10
CLASS_STEP = 20  # the stand-in reads the class from the first pixel, CLASS_STEP apart


@GAN_FEATURE_EXTRACTORS.register_module(name='StandInExtractor', force=True)
class StandInExtractor(FeatureExtractorBase):
    """Confident logits for the class the first pixel encodes; the raw pixels as FID features."""

    def __init__(self):
        super().__init__('stand-in', ['pixels', 'logits'])
        self.calls = 0

    @staticmethod
    def get_provided_features_list():
        return 'pixels', 'logits'

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {'isc': 'logits', 'fid': 'pixels'}[metric]

    def forward(self, x):
        assert x.dtype == torch.uint8
        self.calls += 1
        classes = (x[:, 0, 0, 0].long() // CLASS_STEP).clamp(max=NUM_CLASSES - 1)
        logits = 50.0 * torch.nn.functional.one_hot(classes, NUM_CLASSES).float()
        return x.flatten(1).float(), logits


def class_sampler(class_of_index):
    """A generator whose i-th image (across calls) encodes class ``class_of_index(i)``."""
    drawn = 0

    def sample(n):
        nonlocal drawn
        classes = torch.tensor([class_of_index(drawn + i) for i in range(n)], dtype=torch.float)
        drawn += n
        # Half a grey level above the class value, so truncation lands on it.
        values = (classes * CLASS_STEP + 0.5 - 127.5) / 127.5
        return values.view(n, 1, 1, 1).expand(n, 3, 2, 2).clone()
    return sample


def noise_sampler(seed, shift=0.0):
    generator = torch.Generator().manual_seed(seed)
    return lambda n: (0.3 * torch.randn(n, 3, 2, 2, generator=generator) + shift).clamp(-1, 1)


@pytest.fixture
def extractor():
    return build_feature_extractor(dict(type='StandInExtractor'))


def test_quantise_truncates_like_the_official_code():
    images = torch.tensor([-2.0, -1.0, 0.0, 0.999, 1.0, 3.0])
    assert quantise(images).tolist() == [0, 0, 127, 254, 255, 255]


def test_identical_predictions_score_one(extractor):
    score = InceptionScore(extractor, num_images=100, batch_size=32, splits=10)
    mean, std = score(class_sampler(lambda i: 3))
    assert abs(mean - 1.0) < 1e-6 and std < 1e-6


def test_confident_balanced_predictions_score_the_number_of_classes(extractor):
    score = InceptionScore(extractor, num_images=100, batch_size=32, splits=10)
    mean, std = score(class_sampler(lambda i: i % NUM_CLASSES))
    assert abs(mean - NUM_CLASSES) < 1e-6 and std < 1e-6
    assert extractor.calls == 4  # batches of 32, 32, 32, 4


def test_fid_of_a_set_against_itself_is_zero_and_grows_with_a_shift(extractor, tmp_path):
    real = lambda: generated_batches(noise_sampler(0), 400, 100)  # noqa: E731
    fid = FrechetInceptionDistance(extractor, tmp_path / 'stats.npz', real, num_images=400)
    assert abs(fid(noise_sampler(0))) < 1e-6
    assert fid(noise_sampler(0, shift=0.3)) > 1.0


def test_real_statistics_are_cached_beside_the_data(extractor, tmp_path):
    path = statistics_path(tmp_path, extractor, 'train')
    real = lambda: generated_batches(noise_sampler(0), 200, 100)  # noqa: E731
    first = FrechetInceptionDistance(extractor, path, real).real_statistics()
    assert path.is_file() and extractor.calls == 2
    again = FrechetInceptionDistance(extractor, path, real).real_statistics()
    assert extractor.calls == 2
    np.testing.assert_array_equal(first['sigma'], again['sigma'])


def test_ttur_statistics_are_accepted(extractor, tmp_path):
    features = torch.randn(500, 12, generator=torch.Generator().manual_seed(1))
    path = tmp_path / 'fid_stats_ttur.npz'
    np.savez(path, mu=features.mean(0).numpy(), sigma=np.cov(features.numpy(), rowvar=False))
    fid = FrechetInceptionDistance(extractor, path, num_images=200)
    assert fid(noise_sampler(2)) > 0
    assert extractor.calls == 2  # generated images only


def test_missing_statistics_and_no_data_is_one_line(extractor, tmp_path):
    with pytest.raises(NasError) as info:
        FrechetInceptionDistance(extractor, tmp_path / 'none.npz').real_statistics()
    assert '\n' not in str(info.value) and 'none.npz' in str(info.value)


def test_missing_inception_weights_is_one_line_naming_the_file(tmp_path):
    missing = tmp_path / 'inception.pth'
    with pytest.raises(NasError) as info:
        build_feature_extractor(dict(type='InceptionV3Compat', weights_path=str(missing)))
    message = str(info.value)
    assert '\n' not in message
    assert 'weights-inception-2015-12-05-6726825d.pth' == INCEPTION_WEIGHTS_FILE
    assert INCEPTION_WEIGHTS_FILE in message and str(missing) in message


def test_toy_classifier_extractor_scores_small_images(tmp_path):
    weights = tmp_path / 'toy_classifier.pth'
    torch.save(ToyClassifier(num_classes=NUM_CLASSES, width=8).state_dict(), weights)
    extractor = build_feature_extractor(
        dict(type='ToyClassifier', weights_path=str(weights), num_classes=NUM_CLASSES, width=8))
    mean, _ = InceptionScore(extractor, num_images=20, batch_size=10, splits=2)(noise_sampler(3))
    assert 1.0 <= mean <= NUM_CLASSES
    with pytest.raises(NasError):
        build_feature_extractor(dict(type='ToyClassifier', weights_path=str(tmp_path / 'no.pth')))
