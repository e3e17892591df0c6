"""PreciseCocoMetric: mmdet's CocoMetric values plus the unrounded AP."""
import json

import torch

from detection.metrics import PreciseCocoMetric


def predictions(ann_file, jitter: float, drop_every: int = 0):
    """Detections from the ground truth: boxes moved by ``jitter`` px, some dropped."""
    coco = json.loads(ann_file.read_text())
    samples = []
    for image in coco['images']:
        anns = [a for a in coco['annotations'] if a['image_id'] == image['id']]
        if drop_every:
            anns = [a for i, a in enumerate(anns) if (a['id'] % drop_every)]
        boxes = torch.tensor([[a['bbox'][0] + jitter, a['bbox'][1], a['bbox'][0] + a['bbox'][2],
                               a['bbox'][1] + a['bbox'][3]] for a in anns]).reshape(-1, 4)
        samples.append(dict(img_id=image['id'], ori_shape=(image['height'], image['width']),
                            pred_instances=dict(bboxes=boxes, scores=torch.ones(len(anns)),
                                                labels=torch.tensor([a['category_id'] - 1
                                                                     for a in anns]))))
    return samples


def compute(ann_file, samples):
    metric = PreciseCocoMetric(ann_file=str(ann_file), metric='bbox')
    metric.dataset_meta = dict(classes=('square', 'disc'))
    metric.process({}, samples)
    return metric.compute_metrics(metric.results)


def test_precise_map_is_unrounded_and_agrees_with_coco_metric(toy_coco):
    ann_file = toy_coco / 'annotations' / 'instances_val.json'
    perfect = compute(ann_file, predictions(ann_file, jitter=0.0))
    assert perfect['bbox_mAP_precise'] == perfect['bbox_mAP'] == 1.0

    imperfect = compute(ann_file, predictions(ann_file, jitter=3.0, drop_every=3))
    assert 0.0 < imperfect['bbox_mAP_precise'] < 1.0
    assert round(imperfect['bbox_mAP_precise'], 3) == imperfect['bbox_mAP']
    assert imperfect['bbox_mAP_precise'] != imperfect['bbox_mAP'], 'value was rounded'
    assert round(imperfect['bbox_mAP_50_precise'], 3) == imperfect['bbox_mAP_50']


def test_no_detection_at_all_gives_no_metrics(toy_coco):
    ann_file = toy_coco / 'annotations' / 'instances_val.json'
    empty = [dict(s, pred_instances=dict(bboxes=torch.zeros(0, 4), scores=torch.zeros(0),
                                         labels=torch.zeros(0, dtype=torch.long)))
             for s in predictions(ann_file, jitter=0.0)]
    assert compute(ann_file, empty) == {}
