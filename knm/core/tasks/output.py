"""Task output: masked, capped, stored in PostgreSQL in chunks per node and stream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence

import asyncpg

MASK = "********"
CHUNK = 64 * 1024


class Masker:
    """Replaces known secret values with ``********``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is masked whole.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True)

    def add(self, *values: str) -> None:
        self.secrets = sorted(
            {*self.secrets, *(v for v in values if v and len(v) >= 3)}, key=len, reverse=True
        )

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    @property
    def longest(self) -> int:
        return len(self.secrets[0]) if self.secrets else 0


class StreamBuffer:
    """One node's stream: holds back a possibly split secret, counts bytes against the cap."""

    def __init__(self, cap: int, masker: Masker) -> None:
        self.cap = cap
        self.masker = masker
        self.carry = ""
        self.stored = 0
        self.truncated = False
        self.seq = 0

    def feed(self, text: str, final: bool = False) -> str:
        """The part of the stream that is safe to store and send now, masked and capped."""
        text = self.carry + text
        self.carry = ""
        if not final:
            # Keep back the last line only when it could be the start of a secret.
            cut = text.rfind("\n") + 1
            keep = max(0, self.masker.longest - 1)
            if keep and len(text) - cut > 0:
                split = max(cut, len(text) - keep)
                self.carry, text = text[split:], text[:split]
        text = self.masker(text)
        room = self.cap - self.stored
        encoded = text.encode("utf-8", "replace")
        if len(encoded) > room:
            self.truncated = True
            text = encoded[: max(room, 0)].decode("utf-8", "ignore")
            encoded = text.encode()
        self.stored += len(encoded)
        return text


async def append_chunks(
    conn: asyncpg.Connection | asyncpg.Pool,
    rows: Sequence[tuple[str, str, str, int, str]],
) -> None:
    if rows:
        await conn.copy_records_to_table(
            "task_output", records=rows, columns=["task_id", "node", "stream", "seq", "data"]
        )


async def read_output(
    conn: asyncpg.Connection | asyncpg.Pool, task_id: str, node: str, stream: str
) -> str:
    return (
        await conn.fetchval(
            """SELECT coalesce(string_agg(data, '' ORDER BY seq), '') FROM task_output
               WHERE task_id = $1 AND node = $2 AND stream = $3""",
            task_id,
            node,
            stream,
        )
        or ""
    )


async def read_all_output(
    conn: asyncpg.Connection | asyncpg.Pool, task_id: str
) -> dict[tuple[str, str], str]:
    records = await conn.fetch(
        """SELECT node, stream, string_agg(data, '' ORDER BY seq) AS text FROM task_output
           WHERE task_id = $1 GROUP BY node, stream""",
        task_id,
    )
    return {(r["node"], r["stream"]): r["text"] for r in records}


async def stream_output(
    pool: asyncpg.Pool, task_id: str, node: str, stream: str, start: int = 0, end: int | None = None
) -> AsyncIterator[bytes]:
    """The stored bytes ``start``..``end`` (exclusive), read chunk by chunk, never all at once."""
    position = 0
    last_seq = -1
    while True:
        records = await pool.fetch(
            """SELECT seq, data FROM task_output
               WHERE task_id = $1 AND node = $2 AND stream = $3 AND seq > $4
               ORDER BY seq LIMIT 64""",
            task_id,
            node,
            stream,
            last_seq,
        )
        if not records:
            return
        for record in records:
            last_seq = record["seq"]
            data = record["data"].encode()
            chunk_start, chunk_end = position, position + len(data)
            position = chunk_end
            if chunk_end <= start:
                continue
            if end is not None and chunk_start >= end:
                return
            lo = max(0, start - chunk_start)
            hi = len(data) if end is None else min(len(data), end - chunk_start)
            yield data[lo:hi]
