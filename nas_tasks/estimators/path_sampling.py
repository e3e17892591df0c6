"""An mmengine hook that trains a one-shot supernet one uniform path per iteration."""
from __future__ import annotations

import random
from typing import Callable

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from nas_tasks.space import CategoricalSpace


def resolve_submodule(model, dotted_path: str):
    """``model.backbone`` for ``'backbone'``; unwraps DDP first."""
    module = model.module if is_model_wrapper(model) else model
    for name in filter(None, dotted_path.split('.')):
        module = getattr(module, name)
    return module


class UniformPathHook(Hook):
    """Before each training iteration, set a path sampled uniformly from the space.

    The path depends only on (seed, iteration), so every rank trains the same
    path without communicating, and a resumed training continues the sequence.
    ``constraint`` (e.g. a FLOPs range) rejects paths until one fits.
    """

    priority = 'VERY_HIGH'

    def __init__(self, space: CategoricalSpace, supernet_path: str, seed: int,
                 sample: Callable[[random.Random], dict]):
        self.space = space
        self.supernet_path = supernet_path
        self.seed = seed
        self.sample = sample

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        rng = random.Random(self.seed * 1_000_003 + runner.iter)
        resolve_submodule(runner.model, self.supernet_path).set_arch(self.sample(rng))
