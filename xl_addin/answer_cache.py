"""A warm ``=LX_MMAH_HIST(...)`` answers from memory: the cells handed to COM the last time.

Why: Excel asks a formula again with the same arguments at every recalculation that reaches
it (a precedent recalculated, a full recalculation, the Refresh button marking the workbook's
LX_MMAH formulas dirty, the book opened again). A year of one code is some
250 x 2 cells; querying the store for them and letting xlwings convert each cell costs several
times a whole single-cell ``LX_MMAH`` call (``bench/history.py``). Kept here is the answer
exactly as it went to COM the first time, so a warm call costs a dictionary lookup.

It is never stale. An answer is kept under

* its arguments, each cell with its type (``TRUE``, ``1`` and ``1.0`` are equal in Python but
  different cells to the formula) — see :func:`key_of`;
* today's date and the service's source, which the caller adds to the key (``-60`` and the
  default end move with the date);
* the store it came from, and the store's version (``SQLiteStore.data_version``: it changes with
  every commit, by this process or another, e.g. the daily ``lx-addin snapshot``).

A lookup asks the store's version first, and serves nothing kept under another one: a new
snapshot shows at the next recalculation. A store with no cheap version (``None``: a desk
database) keeps nothing. At most :data:`MAX_CELLS` cells are kept in all, the least recently
used answer going first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

MAX_CELLS = 1_000_000  # about 40 MB of Python objects at worst


def key_of(*args):
    """A hashable key for argument values as xlwings hands them (cells, rows of cells), the type of
    each cell kept beside it; ``None`` when a value cannot be part of a key."""
    try:
        key = tuple(_typed(a) for a in args)
        hash(key)
    except TypeError:
        return None
    return key


def _typed(value):
    if isinstance(value, (list, tuple)):
        return tuple(_typed(v) for v in value)
    return type(value), value


class AnswerCache:
    """Answers of one store's version, by key; thread-safe (Excel's UDF server may call from several)."""

    def __init__(self, max_cells: int = MAX_CELLS):
        self.max_cells = max_cells
        self._lock = threading.Lock()
        self._store = None  # what the answers were read from ...
        self._version = None  # ... and its version then
        self._answers: OrderedDict[tuple, tuple[list, int]] = OrderedDict()  # key -> (answer, cells)
        self._cells = 0

    def __len__(self) -> int:
        return len(self._answers)

    def get(self, store, version, key):
        """The answer kept for *key*, if it was read from *store* at *version*; else None."""
        if version is None or key is None:
            return None
        with self._lock:
            if store is not self._store or version != self._version:
                return None
            found = self._answers.get(key)
            if found is None:
                return None
            self._answers.move_to_end(key)
            return found[0]

    def put(self, store, version, key, answer: list) -> None:
        """Keep *answer* (a list of rows), read from *store* at *version* (asked before the read)."""
        if version is None or key is None:
            return
        cells = sum(len(row) for row in answer) if isinstance(answer, list) else 1
        if cells > self.max_cells:
            return
        with self._lock:
            if store is not self._store or version != self._version:
                self._clear()
                self._store, self._version = store, version
            old = self._answers.pop(key, None)
            if old is not None:
                self._cells -= old[1]
            self._answers[key] = (answer, cells)
            self._cells += cells
            while self._cells > self.max_cells:
                _, (_, n) = self._answers.popitem(last=False)
                self._cells -= n

    def clear(self) -> None:
        with self._lock:
            self._clear()
            self._store = self._version = None

    def _clear(self) -> None:
        self._answers.clear()
        self._cells = 0


__all__ = ["AnswerCache", "MAX_CELLS", "key_of"]
