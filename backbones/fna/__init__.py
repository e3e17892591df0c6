"""FNA (Fang et al., ICLR 2020; FNA++): timm seeds, the super network, parameter
remapping, and the adapted network as a registered timm model and backbone."""
from .adapted import FNA_SPACE, FNABackbone, build_adapted, remap_into_adapted
from .super_net import FNASuperNet
from . import diagnose  # noqa: F401  (the random baseline and standalone recipe of tools/diagnose.py)

__all__ = ['FNA_SPACE', 'FNABackbone', 'FNASuperNet', 'build_adapted', 'remap_into_adapted']