"""mmdet's CocoMetric, plus the unrounded AP for ranking candidates."""
from __future__ import annotations

from typing import Dict

import mmdet.evaluation.metrics.coco_metric as coco_metric_module
from mmdet.evaluation import CocoMetric
from mmdet.registry import METRICS


@METRICS.register_module()
class PreciseCocoMetric(CocoMetric):
    """CocoMetric that also reports ``{iou_type}_mAP_precise``, the AP unrounded.

    CocoMetric rounds every value to 3 decimals, so candidates of a search
    often tie. The evaluation itself is mmdet's and pycocotools' unchanged:
    this only records ``COCOeval.stats`` after ``summarize()``.
    """

    def compute_metrics(self, results: list) -> Dict[str, float]:
        recorded: dict[str, list[float]] = {}
        original = coco_metric_module.COCOeval

        class RecordingCOCOeval(original):
            def summarize(self):
                super().summarize()
                recorded[self.params.iouType] = [float(v) for v in self.stats]

        coco_metric_module.COCOeval = RecordingCOCOeval
        try:
            eval_results = super().compute_metrics(results)
        finally:
            coco_metric_module.COCOeval = original
        for iou_type, stats in recorded.items():
            eval_results[f'{iou_type}_mAP_precise'] = stats[0]
            eval_results[f'{iou_type}_mAP_50_precise'] = stats[1]
        return eval_results
