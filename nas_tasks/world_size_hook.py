"""The world size of a data-parallel training that an mmengine Runner checkpoints.

A Runner (the DetNAS supernet's, for one) saves its training state in its own
checkpoints and resumes from the last one. :class:`WorldSizeHook` writes the
number of processes into every checkpoint's ``meta`` and, when a training
state is resumed, refuses another world size in one line
(:func:`nas_tasks.world_size.check_resumed_world_size`).
"""
from __future__ import annotations

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from nas_tasks.world_size import WORLD_SIZE_KEY, check_resumed_world_size, current_world_size

__all__ = ['WorldSizeHook']


@HOOKS.register_module()
class WorldSizeHook(Hook):
    """Record the world size in the Runner's checkpoints; check it when training resumes.

    Args:
        what: what the Runner trains, for the message (e.g. 'the supernet').
    """

    priority = 'VERY_HIGH'

    def __init__(self, what: str = 'the model'):
        self.what = what
        self._loaded_world_size: int | None = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault('meta', {})[WORLD_SIZE_KEY] = current_world_size()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._loaded_world_size = (checkpoint.get('meta') or {}).get(WORLD_SIZE_KEY)

    def before_train(self, runner) -> None:
        # Only a resumed training state has a position: weights given as
        # load_from (initial weights, e.g. another run's supernet) start at 0
        # and may come from any world size.
        if runner.iter > 0:
            check_resumed_world_size(self._loaded_world_size, self.what,
                                     f'the last checkpoint in {runner.work_dir}')
