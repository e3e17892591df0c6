"""The toy COCO set's outline option (make_coco(stroke=...)), on which the DetNAS toy search runs."""
import json

import numpy as np
from PIL import Image

from detection.toy_data import make_coco


def _first_image_and_boxes(out):
    coco = json.loads((out / 'annotations' / 'instances_train.json').read_text())
    image = coco['images'][0]
    boxes = [a['bbox'] for a in coco['annotations'] if a['image_id'] == image['id']]
    return np.asarray(Image.open(out / 'train' / image['file_name'])).astype(float), boxes


def test_outlines_leave_the_inside_of_each_shape_to_the_background(tmp_path):
    filled, boxes = _first_image_and_boxes(make_coco(tmp_path / 'filled', num_train=1, num_val=1,
                                                     num_heldout=1))
    outline, same_boxes = _first_image_and_boxes(make_coco(tmp_path / 'outline', num_train=1,
                                                           num_val=1, num_heldout=1, stroke=3))
    assert boxes == same_boxes  # the same scene, only drawn differently
    assert boxes
    for x, y, w, h in boxes:
        centre = (slice(int(y + h / 2) - 2, int(y + h / 2) + 2), slice(int(x + w / 2) - 2, int(x + w / 2) + 2))
        # Filled: the centre has the shape's colour; outlined: the background's, which differs.
        assert np.abs(filled[centre].mean((0, 1)) - outline[centre].mean((0, 1))).max() > 20


def test_stroke_is_recorded_only_when_set(tmp_path):
    filled = json.loads((make_coco(tmp_path / 'a', num_train=1, num_val=1, num_heldout=1)
                         / 'toy_data.json').read_text())
    outline = json.loads((make_coco(tmp_path / 'b', num_train=1, num_val=1, num_heldout=1, stroke=2)
                          / 'toy_data.json').read_text())
    assert 'stroke' not in filled['params']  # data made before the option keeps its manifest
    assert outline['params']['stroke'] == 2
