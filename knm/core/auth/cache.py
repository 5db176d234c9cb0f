"""Recently authenticated callers, so a request with a token seen a moment ago skips the
database.

Authentication is the one query every request makes; dashboards poll status with the same token
many times a second. An entry lives at most ``auth_cache_seconds`` and never past its token's
own expiry. Whatever changes who a user is (role, disabled, password — see ``users.update``) or
revokes a token announces the user id on the ``knm_auth`` channel in the same transaction, and
every process forgets that user's entries when it hears it (``knm.core.listen``). While the
listening connection is down the cache is bypassed, so a missed announcement can never keep a
revoked token alive.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import msgspec

from knm.core.auth.principal import Principal
from knm.core.listen import Listener

CHANNEL = "knm_auth"
#: Entries kept at most; the oldest go first.
MAX_ENTRIES = 10_000


async def announce(conn: asyncpg.Connection | asyncpg.Pool, user_id: int) -> None:
    """Tell every process that this user's cached authentications are stale."""
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, str(user_id))


class _Entry(msgspec.Struct):
    principal: Principal
    #: ``time.monotonic()`` after which the entry is stale.
    fresh_until: float
    #: The token's own expiry (``time.time()``), if it has one.
    expires_at: float | None


class PrincipalCache:
    def __init__(self, ttl: float, listener: Listener) -> None:
        self.ttl = ttl
        self._listener = listener
        self._entries: dict[str, _Entry] = {}
        #: Database lookups under way, by token, with the generation each started in.
        self.lookups: dict[str, tuple[int, asyncio.Future[tuple[Principal, float | None]]]] = {}
        self.hits = 0
        self.misses = 0
        #: Bumped by every forget: a lookup that started before one must not cache its answer
        #: (it may have read the user before the change).
        self.generation = 0
        listener.on(CHANNEL, self._on_notify)
        listener.on_reset(self.clear)

    @property
    def live(self) -> bool:
        return self.ttl > 0 and self._listener.live

    def get(self, token: str) -> tuple[Principal | None, bool]:
        """The cached principal (or None) and whether it is due for a re-read.

        An entry past its lifetime but within twice it is still answered — it cannot be wrong
        about anything announced, since announcements delete entries — while the caller
        re-reads it in the background; so an expiry never stalls every request in flight with
        that token for a database round trip."""
        if not self.live:
            return None, True
        entry = self._entries.get(token)
        if entry is None:
            self.misses += 1
            return None, True
        now = time.monotonic()
        if (entry.expires_at is not None and entry.expires_at <= time.time()) or (
            entry.fresh_until + self.ttl <= now
        ):
            del self._entries[token]
            self.misses += 1
            return None, True
        self.hits += 1
        return entry.principal, entry.fresh_until <= now

    def put(
        self, token: str, principal: Principal, expires_at: float | None, generation: int
    ) -> None:
        if not self.live or generation != self.generation:
            return
        if len(self._entries) >= MAX_ENTRIES:
            del self._entries[next(iter(self._entries))]
        self._entries[token] = _Entry(principal, time.monotonic() + self.ttl, expires_at)

    def forget_token(self, token: str) -> None:
        self._entries.pop(token, None)

    def forget_user(self, user_id: int) -> None:
        self.generation += 1
        stale = [k for k, e in self._entries.items() if e.principal.user_id == user_id]
        for token in stale:
            del self._entries[token]

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()

    def _on_notify(self, payload: str) -> None:
        try:
            self.forget_user(int(payload))
        except ValueError:
            self.clear()
