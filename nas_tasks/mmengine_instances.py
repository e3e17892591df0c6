"""The named instances mmengine keeps for every Runner, and their release.

A Runner registers an MMLogger, a MessageHub, a Visualizer and a
DefaultScope under its experiment name (``ManagerMixin._instance_dict``) and
nothing ever removes them. Code that builds many Runners in one process (a
proxy search's candidates, a diagnosis's standalone trainings) releases them
after each one.
"""
from __future__ import annotations

import contextlib
import logging

from mmengine.utils import ManagerMixin


@contextlib.contextmanager
def released_mmengine_instances():
    """Drop the named instances mmengine creates inside the block.

    Without this, a search that trains hundreds of proxy Runners would keep
    every one of them, with their models' visualizer backends and open log
    files, alive. Log files are closed. The "current" instances fall back to
    those that existed before the block.
    """
    before = {cls: set(cls._instance_dict) for cls in _manager_classes()}
    try:
        yield
    finally:
        for cls in _manager_classes():
            for name in set(cls._instance_dict) - before.get(cls, set()):
                instance = cls._instance_dict.pop(name)
                if isinstance(instance, logging.Logger):
                    _close_file_handlers(instance)


def count_mmengine_instances() -> int:
    """How many named instances mmengine holds (loggers, message hubs, visualizers, scopes, ...)."""
    return sum(len(cls._instance_dict) for cls in _manager_classes())


def _manager_classes() -> list[type]:
    """ManagerMixin and all its subclasses; each keeps its own ``_instance_dict``."""
    classes, pending = [], [ManagerMixin]
    while pending:
        cls = pending.pop()
        classes.append(cls)
        pending.extend(cls.__subclasses__())
    return classes


def _close_file_handlers(logger: logging.Logger) -> None:
    for handler in list(logger.handlers):
        if isinstance(handler, logging.FileHandler):
            handler.close()
            logger.removeHandler(handler)
