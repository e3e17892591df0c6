"""Published architectures, and the one resolver from an ``arch`` setting to a checked arch.

An ``arch`` setting (a backbone's, a neck's, a config's) is one of:

* the name of a published architecture (a preset), e.g. ``'nas_fpn'``;
* the path of an arch JSON document, the ``{"space", "version", "arch",
  "metrics"}`` file a search writes (``best_arch.json``);
* such a document as a dict;
* a bare arch dict.

:func:`resolve_arch` turns any of them into the arch of a given space, after
checking that it was made for that space and version and that every key and
value fits (the space's own ``validate``; see :class:`~nas_tasks.space.ArchSpace`
for what a space offers). Tasks publish their architectures at import with
:func:`register_arch`, as timm's models do with ``register_model``; the core
knows no task.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .errors import ArchError, NasError
from .space import Arch, ArchSpace, load_arch


@dataclass(frozen=True)
class PublishedArch:
    """An architecture published for one space (a paper's result, a reference net)."""
    name: str
    space_name: str
    version: int
    arch: Arch
    description: str = ''
    source: str = ''

    def document(self) -> dict:
        """The arch as a document, so a preset is checked like a file."""
        return {'space': self.space_name, 'version': self.version,
                'arch': copy.deepcopy(self.arch), 'metrics': {}}


_PUBLISHED: dict[str, PublishedArch] = {}


def register_arch(name: str, space_name: str, version: int, arch: Arch,
                  description: str = '', source: str = '') -> PublishedArch:
    """Publish ``arch`` of space ``space_name`` v``version`` under ``name``.

    Names are global, so ``arch='<name>'`` needs no space to be looked up.
    Registering the same entry again (a module imported twice) is a no-op.
    """
    if not isinstance(name, str) or not name:
        raise NasError(f'a published architecture needs a non-empty name, got {name!r}')
    entry = PublishedArch(name, space_name, version, copy.deepcopy(arch), description, source)
    known = _PUBLISHED.get(name)
    if known is not None and known != entry:
        raise NasError(f'an architecture named {name!r} is already published for space '
                       f"'{known.space_name}' v{known.version}; publish this one under another name")
    _PUBLISHED[name] = entry
    return entry


def published_archs(space_name: str | None = None) -> list[PublishedArch]:
    """The published architectures, of one space if ``space_name`` is given, in
    the order they were registered."""
    return [entry for entry in _PUBLISHED.values()
            if space_name is None or entry.space_name == space_name]


def is_arch_document(value: Any) -> bool:
    """Whether ``value`` is a document (it names its space) rather than a bare arch."""
    return isinstance(value, Mapping) and 'space' in value and 'arch' in value


def resolve_arch(spec: str | os.PathLike | Mapping, space: ArchSpace) -> Arch:
    """The arch of ``space`` that ``spec`` (a preset name, an arch JSON path, a
    document dict or a bare arch dict) stands for, checked against the space's
    name, version and :meth:`~nas_tasks.space.ArchSpace.validate`.

    Raises :class:`NasError` (:class:`ArchError` for an arch that does not
    fit) with a one-line message that names the problem and the fix.
    """
    return resolve_arch_among(spec, [space])[1]


def resolve_arch_among(spec: str | os.PathLike | Mapping, spaces: Sequence[ArchSpace]
                       ) -> tuple[ArchSpace, Arch]:
    """:func:`resolve_arch` for a family of spaces (DetNAS's variants): a preset
    or a document picks the space it names; a bare arch dict names none, so it
    needs a family of one. Returns ``(space, arch)``."""
    spaces = list(spaces)
    if isinstance(spec, Mapping):
        if is_arch_document(spec):
            return _from_document(dict(spec), spaces, 'arch document')
        return _from_bare_arch(dict(spec), spaces)
    if isinstance(spec, str) and spec in _PUBLISHED:
        return _from_preset(_PUBLISHED[spec], spaces)
    if not isinstance(spec, (str, os.PathLike)):
        raise ArchError('arch must be a preset name, a path to an arch JSON file or a dict, '
                        f'got {type(spec).__name__}')
    if not os.path.isfile(spec):
        raise NasError(f'arch {os.fspath(spec)!r} is neither a preset of '
                       f'{_names(spaces)} ({_presets_of(spaces)}) nor an existing JSON file')
    return _from_document(load_arch(spec), spaces, f'arch file {os.fspath(spec)}')


def _from_bare_arch(arch: Arch, spaces: list[ArchSpace]) -> tuple[ArchSpace, Arch]:
    if len(spaces) != 1:
        raise ArchError(f'a bare arch dict does not say which of the spaces {_names(spaces)} it '
                        "is for; give a document with 'space', 'version' and 'arch', or a preset")
    spaces[0].validate(arch)
    return spaces[0], copy.deepcopy(arch)


def _from_preset(entry: PublishedArch, spaces: list[ArchSpace]) -> tuple[ArchSpace, Arch]:
    if _space_named(entry.space_name, spaces) is None:
        raise ArchError(f"preset {entry.name!r} is an architecture of space '{entry.space_name}', "
                        f'not of {_names(spaces)}; presets of {_names(spaces)}: '
                        f'{_presets_of(spaces)}')
    return _from_document(entry.document(), spaces, f'preset {entry.name!r}')


def _from_document(document: dict, spaces: list[ArchSpace], where: str
                   ) -> tuple[ArchSpace, Arch]:
    # In a family the document's space name picks the member; a single space
    # is asked directly, so that its from_document reports a wrong name or version.
    space = spaces[0] if len(spaces) == 1 else _space_named(document.get('space'), spaces)
    if space is None:
        raise ArchError(f"{where} is for space {document.get('space')!r} "
                        f"v{document.get('version')}, not one of {_names(spaces)}")
    try:
        return space, copy.deepcopy(space.from_document(document))
    except ArchError as error:
        raise ArchError(f'{where}: {error}') from None


def _space_named(name: Any, spaces: list[ArchSpace]) -> ArchSpace | None:
    return next((space for space in spaces if space.name == name), None)


def _names(spaces: list[ArchSpace]) -> str:
    return ', '.join(f"'{space.name}'" for space in spaces)


def _presets_of(spaces: list[ArchSpace]) -> str:
    names = [entry.name for space in spaces for entry in published_archs(space.name)]
    return ', '.join(names) if names else 'none published'
