"""FNA for detection: architecture adaptation of a timm seed inside an mmdet
detector (RetinaNet in the paper), scored by COCO bbox mAP on the held-out split."""
from backbones.fna.search_task import FNASearch
from detection import DEFAULT_SCOPE
from nas_tasks.registry import DIFFERENTIABLE_SEARCHES


@DIFFERENTIABLE_SEARCHES.register_module()
class FNADetectionSearch(FNASearch):
    score_name = 'coco/bbox_mAP'
    default_scope = DEFAULT_SCOPE
    # The official search trains the weights on its half with the val pipeline (no flip).
    weight_pipeline = 'val'


__all__ = ['FNADetectionSearch']
