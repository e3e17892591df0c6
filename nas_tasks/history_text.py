"""A history that grows every round, kept in a checkpoint as JSON-lines text.

``torch.save`` pickles a list of small dicts or tuples one object at a time, so
a checkpoint written after every round costs more as the search goes on: the
2,000 candidate records of an AutoGAN search took hundreds of milliseconds to
pickle (``bench/round_costs.py``). One string pickles as one object.
:class:`HistoryText` encodes each entry once, when it first appears, and joins
the cached lines; :func:`decode_history` reads them back.

The text is Python's JSON with NaN and infinities (``allow_nan``), so floats,
ints, strings, bools, None, lists and dicts with string keys come back equal;
tuples come back as lists. A history stored as a list (by a checkpoint written
before this module) is read as it is.
"""
from __future__ import annotations

import json
from typing import Sequence

from nas_tasks.per_entry_cache import PerEntryCache


class HistoryText:
    """The cached JSON lines of one growing history (see :class:`PerEntryCache`
    for when an entry is encoded again)."""

    def __init__(self):
        self._lines = PerEntryCache(lambda entry: json.dumps(entry, allow_nan=True) + '\n')

    def encode(self, history: Sequence) -> str:
        """``history`` as JSON lines, one per entry."""
        return ''.join(self._lines.values(history))


def decode_history(stored: str | Sequence) -> list:
    """The entries of a history that :meth:`HistoryText.encode` stored (or of a plain list)."""
    if isinstance(stored, str):
        return [json.loads(line) for line in stored.splitlines()]
    return list(stored)
