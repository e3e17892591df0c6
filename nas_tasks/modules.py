"""Import every module that registers components, so configs can name them.

The core names no task: a task package declares itself under the
``nas_tasks.tasks`` entry-point group of its distribution (pyproject.toml)::

    [project.entry-points."nas_tasks.tasks"]
    detection = "detection"

and importing it registers its spaces, estimators, models, toy data layouts
and data hints in the registries of :mod:`nas_tasks.registry` (and mmdet's
or mmseg's).
"""
from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from nas_tasks.errors import NasError

TASKS_GROUP = 'nas_tasks.tasks'


def register_all_modules() -> None:
    from mmdet.utils import register_all_modules as register_mmdet_modules
    from mmseg.utils import register_all_modules as register_mmseg_modules

    register_mmdet_modules(init_default_scope=True)
    # mmseg configs set default_scope='mmseg' themselves; the Runner switches to it.
    register_mmseg_modules(init_default_scope=False)
    import nas_tasks.strategies  # noqa: F401
    import_task_packages()


def task_entry_points() -> list[EntryPoint]:
    """The installed task packages, by name: registration never depends on install order."""
    return sorted(entry_points(group=TASKS_GROUP), key=lambda point: point.name)


def import_task_packages() -> None:
    """Imports the module of every entry point in the ``nas_tasks.tasks`` group."""
    points = task_entry_points()
    if not points:
        # The group is read from the installed metadata: a checkout on
        # sys.path that was never installed has none.
        raise NasError(f'no task packages are registered (entry-point group {TASKS_GROUP}); '
                       'install the project with: pip install -e . (or bash setup.sh)')
    for point in points:
        try:
            point.load()
        except Exception as error:  # noqa: BLE001  (any error while a task registers itself)
            reason = ' '.join(f'{type(error).__name__}: {error}'.split())
            raise NasError(f'task package {point.name} = "{point.value}" (entry point of '
                           f'{TASKS_GROUP}) failed to import: {reason}') from error
