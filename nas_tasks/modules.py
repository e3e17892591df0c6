"""Import every module that registers components, so configs can name them.

The core names no task and no task library: a task package declares itself
under the ``nas_tasks.tasks`` entry-point group of its distribution
(pyproject.toml)::

    [project.entry-points."nas_tasks.tasks"]
    detection = "detection"

and importing it registers its spaces, estimators, models and data hints in
the registries of :mod:`nas_tasks.registry`, and its own library's modules
(detection mmdet's, segmentation mmseg's). Its toy data layouts are entry
points of ``nas_tasks.toy_data``, found without importing the task.

This module imports nothing heavy: ``tools/make_toy_data.py --help`` lists
the layouts through it without importing torch.
"""
from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

from nas_tasks.errors import NasError, first_line

TASKS_GROUP = 'nas_tasks.tasks'
TOY_DATA_GROUP = 'nas_tasks.toy_data'


def register_all_modules(default_scope: str | None = None) -> None:
    """Import every task package; with ``default_scope`` (a config's), make it the
    registry scope of this run, as mmengine's Runner does for its config.

    No scope is set otherwise: each task library is registered by its task
    package, and a run's scope is its config's, never a global default.
    """
    import nas_tasks.strategies  # noqa: F401
    import_task_packages()
    if default_scope:
        from mmengine.registry import init_default_scope
        init_default_scope(default_scope)


def group_entry_points(group: str) -> list[EntryPoint]:
    """The installed entry points of ``group``, by name: nothing depends on install order."""
    return sorted(entry_points(group=group), key=lambda point: point.name)


def task_entry_points() -> list[EntryPoint]:
    """The installed task packages, by name."""
    return group_entry_points(TASKS_GROUP)


def load_entry_point(point: EntryPoint, what: str) -> Any:
    """What ``point`` (a ``what``) names, imported; any error while importing it is one line."""
    try:
        return point.load()
    except Exception as error:  # noqa: BLE001  (any error while a task registers itself)
        raise NasError(f'{what} {point.name} = "{point.value}" (entry point of {point.group}) '
                       f'failed to import: {type(error).__name__}: {first_line(error)}') from error


def import_task_packages() -> None:
    """Imports the module of every entry point in the ``nas_tasks.tasks`` group."""
    points = task_entry_points()
    if not points:
        # The group is read from the installed metadata: a checkout on
        # sys.path that was never installed has none.
        raise NasError(f'no task packages are registered (entry-point group {TASKS_GROUP}); '
                       'install the project with: pip install -e . (or bash setup.sh)')
    for point in points:
        load_entry_point(point, 'task package')


def toy_data_layouts() -> dict[str, EntryPoint]:
    """The toy data layouts (``tools/make_toy_data.py`` commands) by name; nothing is imported."""
    return {point.name: point for point in group_entry_points(TOY_DATA_GROUP)}


def load_toy_data_layout(name: str):
    """The :class:`~nas_tasks.toy_data.ToyDataLayout` registered as ``name``: only now is
    the module that draws it (and its task package) imported."""
    from nas_tasks.toy_data import ToyDataLayout

    layouts = toy_data_layouts()
    if name not in layouts:
        raise NasError(f"no toy data layout '{name}'; the installed ones are: "
                       f"{', '.join(layouts) or f'none (entry-point group {TOY_DATA_GROUP}: pip install -e .)'}")
    layout = load_entry_point(layouts[name], 'toy data layout')
    if not (isinstance(layout, type) and issubclass(layout, ToyDataLayout)):
        raise NasError(f'toy data layout {name} = "{layouts[name].value}" is not a ToyDataLayout '
                       'subclass (nas_tasks.toy_data)')
    return layout
