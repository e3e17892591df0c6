"""The example input of the parity checks and the ONNX graph: one preprocessed image.

Its size is the task config's test image size: the first ``Resize`` of the
test pipeline (mmcv's ``scale`` is ``(width, height)``), padded up to the data
preprocessor's ``pad_size_divisor`` as mmdet pads a batch; ``--input-size``
overrides it. The values are a seeded standard normal draw, the range of a
normalised image.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from mmengine.config import Config

from nas_tasks.errors import NasError
from nas_tasks.validation import check_int


def input_size_of(cfg: Config) -> tuple[int, int]:
    """(height, width) of one test image of ``cfg`` after resizing and padding."""
    pipeline = _test_pipeline(cfg)
    scale = next((step.get('scale') for step in pipeline
                  if step.get('type') == 'Resize' and isinstance(step.get('scale'), (list, tuple))),
                 None)
    if scale is None:
        raise NasError('the task config\'s test pipeline has no Resize with a (width, height) '
                       'scale: give the input size with --input-size HEIGHT WIDTH')
    width, height = scale
    divisor = int((cfg.get('model', {}).get('data_preprocessor') or {}).get('pad_size_divisor', 1))
    return (math.ceil(height / divisor) * divisor, math.ceil(width / divisor) * divisor)


def _test_pipeline(cfg: Config) -> list[dict]:
    for key in ('test_dataloader', 'val_dataloader'):
        dataset = (cfg.get(key) or {}).get('dataset') or {}
        while 'pipeline' not in dataset and isinstance(dataset.get('dataset'), dict):
            dataset = dataset['dataset']  # a wrapped dataset
        if dataset.get('pipeline'):
            return list(dataset['pipeline'])
    return list(cfg.get('test_pipeline') or [])


def example_images(size: Sequence[int], seed: int) -> torch.Tensor:
    height, width = (int(value) for value in size)
    check_int('the input height', height)
    check_int('the input width', width)
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(1, 3, height, width, generator=generator)
