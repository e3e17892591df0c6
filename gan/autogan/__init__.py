"""AutoGAN: the generator search space, its presets, the shared generator and the discriminator."""
from gan.autogan.discriminator import AutoGANDiscriminator
from gan.autogan.generator import AutoGANGenerator
from gan.autogan.shared_generator import AutoGANSharedGenerator
from gan.autogan.space import PRESETS, AutoGANSpace, CellArch

__all__ = ['AutoGANDiscriminator', 'AutoGANGenerator', 'AutoGANSharedGenerator', 'AutoGANSpace',
           'CellArch', 'PRESETS']
