"""The core stands below the tasks: nas_tasks/ imports no task package and no task
library (mmdet, mmseg), and every task package plugs in through the
``nas_tasks.tasks`` entry-point group and registers its own library."""
import ast
import tomllib
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from conftest import fresh_python_json
from nas_tasks import modules
from nas_tasks.errors import NasError
from nas_tasks.modules import TASKS_GROUP, import_task_packages, task_entry_points

REPO = Path(__file__).resolve().parents[1]
CORE = 'nas_tasks'
# The libraries task packages are built on; each task registers its own.
TASK_LIBRARIES = {'mmdet', 'mmseg'}
# Calls that import the module named by their first argument.
IMPORT_CALLS = {'import_module', '__import__'}


def task_packages() -> set[str]:
    """The repository's own packages above the core: top-level folders with an __init__.py."""
    return {init.parent.name for init in REPO.glob('*/__init__.py')} - {CORE, 'tests'}


def imported_packages(source: str) -> dict[str, int]:
    """Top-level package -> first line of each absolute import in ``source``.

    Covers ``import a.b``, ``from a.b import c`` and ``importlib.import_module('a.b')``
    anywhere in the file (inside functions too); relative imports stay in their package.
    """
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Call) and _called_name(node) in IMPORT_CALLS and node.args \
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            names = [node.args[0].value]
        else:
            continue
        for name in names:
            found.setdefault(name.split('.')[0], node.lineno)
    return found


def _called_name(call: ast.Call) -> str | None:
    """``f`` of ``f(...)`` and of ``module.f(...)``."""
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return call.func.id if isinstance(call.func, ast.Name) else None


def pyproject_tasks() -> dict[str, str]:
    with open(REPO / 'pyproject.toml', 'rb') as f:
        return tomllib.load(f)['project']['entry-points'][TASKS_GROUP]


def test_the_repository_has_task_packages():
    assert {'backbones', 'detection', 'segmentation'} <= task_packages()


def test_scanner_finds_a_planted_task_import():
    planted = ('import os\n'
               'from nas_tasks.errors import NasError\n'
               'def write():\n'
               '    from detection.toy_data import make_coco\n'
               'class Task:\n'
               '    def build(self):\n'
               '        import segmentation.cityscapes as cityscapes\n'
               '        return importlib.import_module("backbones.detnas")\n'
               'from . import sibling\n')
    assert imported_packages(planted) == {'os': 1, 'nas_tasks': 2, 'detection': 4,
                                          'segmentation': 7, 'backbones': 8}


def core_imports_of(packages: set[str]) -> list[str]:
    """``path:line imports package`` for each import of one of ``packages`` under nas_tasks/."""
    core_files = sorted((REPO / CORE).rglob('*.py'))
    assert REPO / CORE / 'modules.py' in core_files
    return [f'{path.relative_to(REPO)}:{line} imports {package}'
            for path in core_files
            for package, line in imported_packages(path.read_text()).items()
            if package in packages]


def test_core_imports_no_task_package():
    offending = core_imports_of(task_packages())
    assert not offending, 'the core must not import a task package:\n' + '\n'.join(offending)


def test_scanner_finds_a_planted_library_import():
    planted = ('def register():\n'
               '    from mmdet.utils import register_all_modules\n'
               'import mmseg.registry\n')
    assert set(imported_packages(planted)) & TASK_LIBRARIES == TASK_LIBRARIES


def test_core_imports_no_task_library():
    offending = core_imports_of(TASK_LIBRARIES)
    assert not offending, ('the core must not import mmdet or mmseg (the task packages register '
                           'them):\n' + '\n'.join(offending))


def test_each_task_registers_its_library_and_no_global_scope():
    """After register_all_modules() mmdet's and mmseg's modules are registered, by the
    task packages, and no default scope is set; a run's scope is its config's."""
    code = (
        'import json\n'
        'from mmengine.registry import DefaultScope\n'
        'from nas_tasks.modules import register_all_modules\n'
        'register_all_modules()\n'
        'from mmdet.registry import MODELS as DET\n'
        'from mmseg.registry import MODELS as SEG\n'
        'scope = DefaultScope.get_current_instance()\n'
        'after = [scope and scope.scope_name]\n'
        "register_all_modules('mmseg')\n"
        'after.append(DefaultScope.get_current_instance().scope_name)\n'
        "print(json.dumps(dict(scopes=after, det='RetinaNet' in DET.module_dict,\n"
        "                      seg='EncoderDecoder' in SEG.module_dict)))\n")
    found = fresh_python_json(code)
    assert found == dict(scopes=[None, 'mmseg'], det=True, seg=True)


def test_every_task_package_is_an_entry_point():
    declared = pyproject_tasks()
    assert {value.split(':')[0].split('.')[0] for value in declared.values()} >= task_packages(), (
        f'add each task package to [project.entry-points."{TASKS_GROUP}"] in pyproject.toml')


def test_installed_entry_points_match_pyproject():
    installed = {point.name: point.value for point in task_entry_points()}
    assert installed == pyproject_tasks(), 'stale install: rerun bash setup.sh (pip install -e .)'
    # Sorted by name, so registration order does not depend on how they were installed.
    assert list(installed) == sorted(installed)


def test_a_task_that_fails_to_import_is_one_clear_line(monkeypatch):
    broken = EntryPoint('broken', 'no_such_task_package.sub', TASKS_GROUP)
    monkeypatch.setattr(modules, 'task_entry_points', lambda: [broken])
    with pytest.raises(NasError) as error:
        import_task_packages()
    message = str(error.value)
    assert '\n' not in message
    for text in ('broken = "no_such_task_package.sub"', TASKS_GROUP, 'ModuleNotFoundError',
                 "'no_such_task_package'"):
        assert text in message


def test_no_registered_task_says_how_to_install(monkeypatch):
    monkeypatch.setattr(modules, 'task_entry_points', lambda: [])
    with pytest.raises(NasError, match=r'no task packages .*pip install -e \.'):
        import_task_packages()
