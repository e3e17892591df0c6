"""A function of each entry of a list that grows every round, computed once per entry.

A search's history grows by a few records a round and is read whole every
round (to checkpoint it, to find the best whole candidate). Whatever is
derived from one record alone need not be derived again: :class:`PerEntryCache`
keeps ``fn(entry)`` for the entries it has seen, recognised by identity, so a
round costs what its new records cost, not what the whole history does.
"""
from __future__ import annotations

from typing import Any, Callable, Generic, Sequence, TypeVar

Entry = TypeVar('Entry')
Value = TypeVar('Value')


class PerEntryCache(Generic[Entry, Value]):
    """``fn`` of each entry, computed when the entry first appears.

    Entries are compared by identity with those seen before: an entry replaced
    by another object (a retried candidate's new record) is computed again, as
    is everything after it; a shorter list drops the rest. Entries must not be
    changed in place, and ``fn`` must depend on the entry alone.
    """

    def __init__(self, fn: Callable[[Entry], Value]):
        self.fn = fn
        self._entries: list[Entry] = []
        self._values: list[Value] = []

    def values(self, entries: Sequence[Entry]) -> list[Value]:
        """``[fn(entry) for entry in entries]``, computing only the new ones."""
        unchanged = 0
        for seen, entry in zip(self._entries, entries):
            if seen is not entry:
                break
            unchanged += 1
        fresh: list[Any] = list(entries[unchanged:])
        self._entries[unchanged:] = fresh
        self._values[unchanged:] = [self.fn(entry) for entry in fresh]
        return list(self._values)
