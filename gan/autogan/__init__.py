"""AutoGAN: the generator search space, its presets, the shared generator and the discriminator."""
from gan.autogan.space import PRESETS, AutoGANSpace, CellArch

__all__ = ['AutoGANSpace', 'CellArch', 'PRESETS']
