"""AutoGAN: the generator search space, its presets, the shared generator, the discriminator,
the shared-GAN training with its dynamic reset, the search's estimator, and the
final training of a found generator."""
from gan.autogan.discriminator import AutoGANDiscriminator
from gan.autogan.dynamic_reset import DynamicReset
from gan.autogan.estimator import AutoGANEstimator
from gan.autogan.final_training import AutoGANTrainingModel
from gan.autogan.generator import AutoGANGenerator
from gan.autogan.real_data import RealImageBatches
from gan.autogan.shared_generator import AutoGANSharedGenerator
from gan.autogan.shared_training import SharedGANSettings, SharedGANTrainer, TrainReport
from gan.autogan.space import PRESETS, AutoGANSpace, CellArch
from gan.autogan import latency  # noqa: F401  (registers AutoGANLatency)
from gan.autogan import diagnose  # noqa: F401  (registers AutoGANStandaloneTraining for tools/diagnose.py)

__all__ = ['AutoGANDiscriminator', 'AutoGANEstimator', 'AutoGANGenerator', 'AutoGANSharedGenerator',
           'AutoGANSpace', 'AutoGANTrainingModel', 'CellArch', 'DynamicReset', 'PRESETS',
           'RealImageBatches', 'SharedGANSettings', 'SharedGANTrainer', 'TrainReport']
