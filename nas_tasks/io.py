"""Crash-safe file writes shared by the search tools.

A search can be killed at any moment; a checkpoint or result file must then
hold either its old or its new content, never half of each.
"""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Replace ``path`` with ``text`` in one step, creating parent folders.

    The text goes to a temporary file in the same folder (so ``os.replace``
    stays on one file system and is atomic), which is flushed to disk and then
    renamed over ``path``. On any error the temporary file is removed and the
    old ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp')
    try:
        # Mode 'x' honours the umask, unlike tempfile.mkstemp's fixed 0600.
        with open(tmp, 'x', encoding='utf-8') as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically (see :func:`atomic_write_text`).

    ``obj`` is serialised before anything touches the disk, so an object that
    is not JSON serialisable raises ``TypeError`` and leaves ``path`` as it was.
    """
    atomic_write_text(path, json.dumps(obj, indent=2) + '\n')


def append_jsonl(path: str | os.PathLike, record: Any) -> None:
    """Append ``record`` as one JSON line to ``path``, creating it if needed.

    The line is serialised first and written with a single call, so a failed
    serialisation appends nothing.
    """
    line = jsonl_line(record)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'a', encoding='utf-8') as f:
        f.write(line)


def jsonl_line(record: Any) -> str:
    """``record`` as one line of a JSON-lines file."""
    return json.dumps(record, separators=(',', ':')) + '\n'
