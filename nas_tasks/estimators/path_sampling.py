"""An mmengine hook that trains a one-shot supernet one uniform path per iteration."""
from __future__ import annotations

import random
from typing import Callable

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from nas_tasks.registry import SPACES
from nas_tasks.space import CategoricalSpace


def resolve_submodule(model, dotted_path: str):
    """``model.backbone`` for ``'backbone'``; unwraps DDP first."""
    module = model.module if is_model_wrapper(model) else model
    for name in filter(None, dotted_path.split('.')):
        module = getattr(module, name)
    return module


@HOOKS.register_module()
class UniformPathHook(Hook):
    """Before each training iteration, set a path sampled uniformly from the space.

    The path depends only on (seed, iteration), so every rank trains the same
    path without communicating, and a resumed training continues the sequence.

    Args:
        space: a search space, or its config (``dict(type='DetNASSpace', ...)``).
        supernet_path: dotted path of the supernet in the model; it must have
            ``set_arch(arch)``.
        seed: seeds the path sequence.
        sample: ``rng -> arch``; defaults to ``space.sample``. The one-shot
            estimator passes a sampler restricted to a FLOPs range.
    """

    priority = 'VERY_HIGH'

    def __init__(self, space: CategoricalSpace | dict, supernet_path: str = 'backbone',
                 seed: int = 0, sample: Callable[[random.Random], dict] | None = None):
        self.space = SPACES.build(space) if isinstance(space, dict) else space
        self.supernet_path = supernet_path
        self.seed = seed
        self.sample = sample or self.space.sample

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        rng = random.Random(self.seed * 1_000_003 + runner.iter)
        resolve_submodule(runner.model, self.supernet_path).set_arch(self.sample(rng))
