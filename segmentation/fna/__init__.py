"""FNA for segmentation: architecture adaptation of a timm seed as the backbone
of mmseg's DeepLabv3 (FNA's separable ASPP head, output stride 16), scored by
mIoU. The official code never released this search (JaminFong/FNA issue #21)."""
from backbones.fna.search_task import FNASearch
from nas_tasks.registry import DIFFERENTIABLE_SEARCHES
from segmentation import DEFAULT_SCOPE

from .separable_aspp_head import SeparableASPPHead


@DIFFERENTIABLE_SEARCHES.register_module()
class FNASegmentationSearch(FNASearch):
    score_name = 'mIoU'
    default_scope = DEFAULT_SCOPE


__all__ = ['FNASegmentationSearch', 'SeparableASPPHead']
