"""Latency of NAS-FPN candidates: each candidate's whole detector timed once.

A pyramid's cells are not independent (a cell's inputs are earlier cells'
outputs, at levels that other cells choose), so no per-cell table adds up to
a pyramid's latency. Instead the config's detector with the candidate neck is
timed end to end (mmdet's ``mode='tensor'`` forward: backbone, neck and head,
without pre- and post-processing), and kept under the canonical arch.
"""
from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
from pathlib import Path

import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import DefaultScope

from detection import DEFAULT_SCOPE
from detection.nas_fpn.space import NASFPNSpace
from nas_tasks.latency import Forward, WholeNetworkLatency
from nas_tasks.registry import COST_MODELS
from nas_tasks.space import Arch


@COST_MODELS.register_module()
class NASFPNLatency(WholeNetworkLatency):
    """The detector of the search config with each candidate in ``model.neck.arch``, in ms.

    ``input_size`` is the detector's input (height, width); it is padded up to
    the data preprocessor's ``pad_size_divisor``, as mmdet pads its batches.
    Other settings: see :class:`~nas_tasks.latency.LatencyModel`.
    """

    def __init__(self, space: NASFPNSpace, config: Config, input_size, table: str | Path | None = None,
                 batch: int = 1, repeats: int = 10, warmup: int = 2, clock: str = 'wall',
                 device: str | None = None):
        self.model_cfg = copy.deepcopy(config.model)
        divisor = (self.model_cfg.get('data_preprocessor') or {}).get('pad_size_divisor', 1)
        input_size = [math.ceil(side / divisor) * divisor for side in input_size]
        self.network = f'nas-fpn-{self.model_cfg.type}-{_model_digest(self.model_cfg)}'
        super().__init__(space, input_size, table, batch, repeats, warmup, clock, device)

    def whole_network(self, arch: Arch) -> tuple[Forward, torch.Tensor]:
        model_cfg = copy.deepcopy(self.model_cfg)
        model_cfg.neck.arch = dict(arch)
        with DefaultScope.overwrite_default_scope(DEFAULT_SCOPE):
            detector = self.place(MODELS.build(model_cfg))
        return functools.partial(detector, mode='tensor'), self.zeros()


def _model_digest(model_cfg) -> str:
    """A short digest of the detector config apart from the neck's arch: the network timed."""
    cfg = model_cfg.to_dict() if hasattr(model_cfg, 'to_dict') else dict(model_cfg)
    cfg['neck'] = {key: value for key, value in cfg['neck'].items() if key != 'arch'}
    return hashlib.sha1(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:10]
