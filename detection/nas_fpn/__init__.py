"""NAS-FPN: the merging-cell search space and a neck for any of its architectures."""
from detection.nas_fpn.neck import SearchableNASFPN, state_dict_from_mmdet_nasfpn
from detection.nas_fpn.space import PRESETS, NASFPNSpace
from detection.nas_fpn import latency  # noqa: F401  (registers NASFPNLatency)

__all__ = ['NASFPNSpace', 'PRESETS', 'SearchableNASFPN', 'state_dict_from_mmdet_nasfpn']
