"""NAS-FPN: the merging-cell search space and a neck for any of its architectures."""
from detection.nas_fpn.neck import SearchableNASFPN, state_dict_from_mmdet_nasfpn
from detection.nas_fpn.space import PRESETS, NASFPNSpace

__all__ = ['NASFPNSpace', 'PRESETS', 'SearchableNASFPN', 'state_dict_from_mmdet_nasfpn']
