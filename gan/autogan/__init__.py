"""AutoGAN: the generator search space, its presets, the shared generator, the discriminator,
the shared-GAN training with its dynamic reset, and the search's estimator."""
from gan.autogan.discriminator import AutoGANDiscriminator
from gan.autogan.dynamic_reset import DynamicReset
from gan.autogan.estimator import AutoGANEstimator, RealImages
from gan.autogan.generator import AutoGANGenerator
from gan.autogan.shared_generator import AutoGANSharedGenerator
from gan.autogan.shared_training import SharedGANSettings, SharedGANTrainer, TrainReport
from gan.autogan.space import PRESETS, AutoGANSpace, CellArch

__all__ = ['AutoGANDiscriminator', 'AutoGANEstimator', 'AutoGANGenerator', 'AutoGANSharedGenerator',
           'AutoGANSpace', 'CellArch', 'DynamicReset', 'PRESETS', 'RealImages', 'SharedGANSettings',
           'SharedGANTrainer', 'TrainReport']
