"""Task output: masked, capped, stored in PostgreSQL in chunks per node and stream."""

from __future__ import annotations

import base64
import urllib.parse
from collections.abc import AsyncIterator, Iterable

import asyncpg

MASK = "********"
CHUNK = 64 * 1024
#: Shorter values are not masked: they would mask ordinary words.
MIN_SECRET = 3
#: Shorter encodings are not masked (a 3-byte secret's base64 core is 4 characters).
MIN_ENCODED = 4


def encodings(secret: str) -> set[str]:
    """How output commonly shows ``secret`` besides itself: base64 (standard and URL-safe) of
    it and of it with a trailing newline (``echo "$X" | base64``) — whole, wrapped at 76
    columns as ``base64`` prints it, and the part fixed whatever precedes it at each of the
    three byte offsets —, hex in both cases, URL-encoded.

    Not recognised: base64 of a secret longer than 57 bytes that starts mid-line and is wrapped
    (each line is a fragment), and any other transformation."""
    found: set[str] = set()
    raw = secret.encode("utf-8", "surrogatepass")
    for data in (raw, raw + b"\n"):
        # As ``base64`` prints it, wrapped at 76 columns (a key piped through it).
        whole = base64.b64encode(data).decode()
        found.add("\n".join(whole[i : i + 76] for i in range(0, len(whole), 76)))
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            found.add(encode(data).decode())
            for skip in range(3):
                # Base64 works on 3-byte groups: the groups wholly inside the secret come out
                # the same whatever comes before and after it.
                whole = (len(data) - skip) // 3 * 3
                if whole > 0:
                    found.add(encode(data[skip : skip + whole]).decode())
    found.add(raw.hex())
    found.add(raw.hex().upper())
    for safe in ("", "/"):
        found.add(urllib.parse.quote(secret, safe=safe, errors="surrogatepass"))
        found.add(urllib.parse.quote_plus(secret, safe=safe, errors="surrogatepass"))
    return {value for value in found if len(value) >= MIN_ENCODED and value != secret}


class Masker:
    """Replaces known secret values, and their common encodings, with ``********``.

    Every character that any occurrence of any of them covers is masked: occurrences that
    overlap (of one value or of several) become one ``********``, so no part of an overlapping
    secret is left; occurrences that only touch stay one mask each."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: list[str] = []
        self._known: set[str] = set()
        self.add(*secrets)

    def add(self, *values: str) -> None:
        fresh = {v for v in values if v and len(v) >= MIN_SECRET} - self._known
        if not fresh:
            return
        self._known |= fresh
        expanded = set(self.secrets) | fresh
        for value in fresh:
            expanded |= encodings(value)
        # Longest first: at one position the longest value decides how far a mask reaches.
        self.secrets = sorted(expanded, key=len, reverse=True)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """The runs of ``text`` to mask, in order: overlapping occurrences merged."""
        found = []
        for secret in self.secrets:
            at = text.find(secret)
            while at != -1:
                found.append((at, at + len(secret)))
                at = text.find(secret, at + 1)
        found.sort()
        runs: list[tuple[int, int]] = []
        for start, end in found:
            if runs and start < runs[-1][1]:
                if end > runs[-1][1]:
                    runs[-1] = (runs[-1][0], end)
            else:
                runs.append((start, end))
        return runs

    def __call__(self, text: str) -> str:
        if not self.secrets or not text:
            return text
        return _replace(text, self.spans(text))

    @property
    def longest(self) -> int:
        return len(self.secrets[0]) if self.secrets else 0

    def pending_from(self, text: str) -> int:
        """Where in ``text`` a secret may begin that more text could complete (``len(text)``
        when none may): the text from there on is a proper prefix of a secret."""
        end = len(text)
        earliest = end
        for secret in self.secrets:
            start = max(0, end - len(secret) + 1)
            if start >= earliest:
                continue
            # Where at least the head fits, the head must be there: found by a C-level search.
            head = secret[:16]
            at = text.find(head, start, earliest + len(head) - 1)
            while at != -1:
                if text.startswith(secret[: end - at], at):
                    earliest = at
                    break
                at = text.find(head, at + 1, earliest + len(head) - 1)
            # The last few positions, where less than the head is left: only where the
            # secret's first character is (found in C, not by a slice at every position).
            first = secret[0]
            at = text.find(first, max(start, end - len(head) + 1), earliest)
            while at != -1:
                if secret.startswith(text[at:]):
                    earliest = at
                    break
                at = text.find(first, at + 1, earliest)
        return earliest


def _replace(text: str, runs: list[tuple[int, int]]) -> str:
    if not runs:
        return text
    parts = []
    position = 0
    for start, end in runs:
        parts.append(text[position:start])
        parts.append(MASK)
        position = end
    parts.append(text[position:])
    return "".join(parts)


class StreamBuffer:
    """One node's stream: holds back what a secret may still span, counts bytes against the cap.

    What it hands out, piece by piece, is exactly what masking the whole stream at once would
    give: it keeps back the tail that may be the start of a secret, and the whole of a masked
    run that such a start overlaps (it may grow), masks the rest and keeps the tail unmasked
    for the next piece. The last piece (``final``) masks and hands out everything."""

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
        runs = self.masker.spans(text) if self.masker.secrets and text else []
        if not final:
            hold = self.masker.pending_from(text)
            for start, end in runs:
                if start < hold < end:
                    hold = start
                    break
            if hold < len(text):
                self.carry, text = text[hold:], text[:hold]
                runs = [(start, end) for start, end in runs if end <= hold]
        text = _replace(text, runs)
        room = self.cap - self.stored
        encoded = text.encode("utf-8", "replace")
        if len(encoded) > room:
            self.truncated = True
            text = encoded[: max(room, 0)].decode("utf-8", "ignore")
            encoded = text.encode()
        self.stored += len(encoded)
        return text


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
