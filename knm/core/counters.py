"""How often one request decrypts a secret and reads a cluster or credential row.

The core counts in its three choke points (``EncryptedColumn.open``, the credential loader and
the cluster row reader) into the ``Counts`` of the current context, if any. A test or a bench
opens one with ``counting()`` around a request; the task the request starts in this process
inherits it (``asyncio`` copies the context into the tasks it creates), so the counts cover
the whole walk from request to run. Outside ``counting()`` counting costs one lookup.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from contextvars import ContextVar

import msgspec


class Counts(msgspec.Struct):
    #: Per sealed value (``<table>:<purpose>:<row id>``): times it was decrypted.
    decrypts: Counter[str] = msgspec.field(default_factory=Counter)
    #: Per row (``clusters:<name>``, ``credentials:<id>``): times it was read.
    rows: Counter[str] = msgspec.field(default_factory=Counter)


_current: ContextVar[Counts | None] = ContextVar("knm_counts", default=None)


def decrypted(key: str) -> None:
    counts = _current.get()
    if counts is not None:
        counts.decrypts[key] += 1


def row_read(key: str) -> None:
    counts = _current.get()
    if counts is not None:
        counts.rows[key] += 1


@contextlib.contextmanager
def counting() -> Iterator[Counts]:
    """Counts what happens in this context (and in tasks it starts) until the block ends."""
    counts = Counts()
    token = _current.set(counts)
    try:
        yield counts
    finally:
        _current.reset(token)
