"""mmdet's CocoMetric with the unrounded AP, and scoring a candidate detector on a split."""
from __future__ import annotations

import contextlib
import io
import logging
import time
from dataclasses import dataclass
from typing import Dict

import mmdet.evaluation.metrics.coco_metric as coco_metric_module
import torch
from mmdet.evaluation import CocoMetric
from mmdet.registry import METRICS
from mmengine.evaluator import Evaluator
from mmengine.logging import MMLogger

from nas_tasks.errors import NasError


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


@dataclass
class SplitScore:
    """A detector scored on a whole held-out split."""

    score: float
    metrics: dict[str, float]
    seconds_inference: float
    seconds_coco_eval: float


def score_on_split(model: torch.nn.Module, loader, evaluator: Evaluator, score_key: str) -> SplitScore:
    """Run ``model`` over ``loader`` and score it with ``evaluator`` in this process alone.

    ``Evaluator.evaluate`` would gather results across ranks, but in a search
    each rank scores different candidates on the whole split, so each metric
    computes on its own results. pycocotools' prints and CocoMetric's tables
    are muted to keep the search log to one line per round (candidates.jsonl
    has every value). No detection at all makes CocoMetric return nothing:
    that scores 0.
    """
    start = time.perf_counter()
    model.eval()
    with torch.no_grad():
        for batch in loader:
            evaluator.process(data_samples=model.test_step(batch), data_batch=batch)
    inferred = time.perf_counter()
    metrics: dict[str, float] = {}
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            for metric in evaluator.metrics:
                metrics.update(metric.compute_metrics(metric.results))
                metric.results.clear()
    finally:
        logger.setLevel(level)
    metrics = {key: float(value) for key, value in metrics.items() if isinstance(value, (int, float))}
    if metrics and score_key not in metrics:
        raise NasError(f"the val_evaluator reports no '{score_key}' (it gave {sorted(metrics)}); "
                       "use type='PreciseCocoMetric' or set estimator.score_key")
    return SplitScore(float(metrics.get(score_key, 0.0)), metrics,
                      seconds_inference=inferred - start,
                      seconds_coco_eval=time.perf_counter() - inferred)
