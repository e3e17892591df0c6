"""What a finished search leaves for export: its arch document and the folder around it."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from nas_tasks.errors import NasError
from nas_tasks.space import load_arch
from nas_tasks.workdir import BEST_ARCH_NAME

DOCUMENT_KEYS = ('space', 'version', 'arch')


@dataclass(frozen=True)
class FoundModel:
    """A found architecture: ``arch_path`` (a ``best_arch.json``) and its document.

    The search's other files (weights, the supernet) are looked up next to
    the arch file, in :attr:`work_dir`.
    """
    arch_path: Path
    document: dict

    @property
    def work_dir(self) -> Path:
        return self.arch_path.parent

    @property
    def space_name(self) -> str:
        return self.document['space']

    @property
    def arch(self) -> dict:
        return copy.deepcopy(self.document['arch'])

    def inline_document(self) -> dict:
        """The document without its metrics: what a plain config inlines as ``arch=``,
        so that the fixed module still checks the space's name and version."""
        return {key: copy.deepcopy(self.document[key]) for key in DOCUMENT_KEYS}

    def file(self, name: str) -> Path:
        return self.work_dir / name


def read_found_model(source: str | Path) -> FoundModel:
    """A search work dir (its ``best_arch.json``) or an arch JSON file."""
    path = Path(source)
    if path.is_dir():
        arch_path = path / BEST_ARCH_NAME
        if not arch_path.is_file():
            raise NasError(f'{path} holds no {BEST_ARCH_NAME}: export a finished search '
                           'work dir, or give the arch JSON file itself')
    elif path.is_file():
        arch_path = path
    else:
        raise NasError(f'{source} is neither a search work dir nor an arch JSON file')
    document = load_arch(arch_path)
    missing = [key for key in DOCUMENT_KEYS if key not in document]
    if missing:
        raise NasError(f"{arch_path} is not an arch document: it has no '{missing[0]}' "
                       '(a search writes {"space", "version", "arch", "metrics"})')
    return FoundModel(arch_path.resolve(), document)
