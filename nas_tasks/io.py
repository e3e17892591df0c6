"""Crash-safe file writes: the one writer every file of the suite goes through.

A search can be killed at any moment; a checkpoint or result file must then
hold either its old or its new content, never half of each. Every write goes
to a temporary file in the target's folder (so ``os.replace`` stays on one
file system and is atomic), is flushed and fsynced, and is then renamed over
the target; the folder is fsynced too, so the rename survives a power cut.

JSON written here is strict JSON: non-finite floats (NaN, +-inf), which
Python's ``json`` would write as the invalid literals ``NaN`` and
``Infinity``, become ``null``.
"""
from __future__ import annotations

import json
import math
import os
import uuid
from pathlib import Path
from typing import IO, Any, Callable


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Replace ``path`` with what ``write(file)`` writes to a binary file, in one step.

    Parent folders are created. On any error the temporary file is removed and
    the old ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp')
    try:
        # Mode 'x' honours the umask, unlike tempfile.mkstemp's fixed 0600.
        with open(tmp, 'xb') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some file systems do not open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8), atomically (see :func:`atomic_write`)."""
    atomic_write_bytes(path, text.encode('utf-8'))


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None`` (JSON ``null``)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def to_json(obj: Any, **kwargs) -> str:
    """Strict JSON text of ``obj``: non-finite floats become ``null``, never ``NaN``."""
    return json.dumps(json_safe(obj), allow_nan=False, **kwargs)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented strict JSON, atomically.

    ``obj`` is serialised before anything touches the disk, so an object that
    is not JSON serialisable raises ``TypeError`` and leaves ``path`` as it was.
    """
    atomic_write_text(path, to_json(obj, indent=2) + '\n')


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` through :func:`atomic_write`: never a half-written checkpoint."""
    import torch
    atomic_write(path, lambda f: torch.save(obj, f))


def append_jsonl(path: str | os.PathLike, record: Any) -> None:
    """Append ``record`` as one strict JSON line to ``path``, creating it if needed.

    The line is serialised first and written with a single call, then fsynced,
    so a failed serialisation appends nothing. (A JSON-lines log that a resumed
    search rewrites from its checkpoint need not be replaced atomically.)
    """
    line = jsonl_line(record)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'a', encoding='utf-8') as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def jsonl_line(record: Any) -> str:
    """``record`` as one line of a JSON-lines file (strict JSON)."""
    return to_json(record, separators=(',', ':')) + '\n'
