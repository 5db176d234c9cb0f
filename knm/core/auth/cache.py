"""Recently authenticated callers, so a request with a token seen a moment ago skips the
database; and the users' rows ``/auth/me`` answers with, under the same invalidation.

Authentication is the one query every request makes; dashboards poll status with the same token
many times a second. An entry lives at most ``auth_cache_seconds`` and never past its token's
own expiry. Whatever changes who a user is (role, disabled, password — see ``users.update``) or
revokes a token announces the user id on the ``knm_auth`` channel in the same transaction, and
every process forgets that user's entries — tokens and row — when it hears it
(``knm.core.listen``). While the listening connection is down the cache is bypassed, so a missed
announcement can never keep a revoked token alive or a changed user's row shown.

A user's row has no lifetime of its own: it changes only through ``users.update``, which
announces, so it stays until an announcement, the listener's reset, or eviction.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import asyncpg
import msgspec

from knm.core.auth.principal import Principal
from knm.core.listen import Listener

if TYPE_CHECKING:
    from knm.core.auth.users import User

CHANNEL = "knm_auth"
#: Entries kept at most; the oldest go first.
MAX_ENTRIES = 10_000


async def announce(conn: asyncpg.Connection | asyncpg.Pool, user_id: int) -> None:
    """Tell every process that this user's cached authentications are stale."""
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, str(user_id))


#: A lookup's answer: the principal and when its token expires (``time.time()``), if ever.
Lookup = tuple[Principal, float | None]


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
        #: Users' rows as ``/auth/me`` shows them, by id.
        self._users: dict[int, User] = {}
        #: Database lookups under way, by token, with the generation each started in.
        self._lookups: dict[str, tuple[int, asyncio.Future[Lookup]]] = {}
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

    def user(self, user_id: int) -> User | None:
        """The user's row, if known (and the cache is live)."""
        if not self.live:
            return None
        return self._users.get(user_id)

    def put_user(self, user: User, generation: int) -> None:
        """Remember a row read in ``generation``: a read that began before an announcement may
        have seen the row before the change, so it is dropped."""
        if not self.live or generation != self.generation:
            return
        if len(self._users) >= MAX_ENTRIES:
            del self._users[next(iter(self._users))]
        self._users[user.id] = user

    def lookup(
        self, token: str, read: Callable[[], Coroutine[Any, Any, Lookup]]
    ) -> asyncio.Future[Lookup]:
        """The database lookup of ``token`` under way, started with ``read`` if none is: when a
        token's entry expires, every request in flight with it shares one query (and its
        refusal, if any). Its answer is cached; a refusal drops the token's entry at once."""
        found = self._lookups.get(token)
        if found is not None and found[0] == self.generation:
            return found[1]
        generation = self.generation
        future = asyncio.ensure_future(read())
        entry = self._lookups[token] = (generation, future)

        def done(f: asyncio.Future[Lookup]) -> None:
            if self._lookups.get(token) is entry:
                del self._lookups[token]
            if f.cancelled():
                return
            if f.exception() is not None:
                self._entries.pop(token, None)
                return
            principal, expires_at = f.result()
            self.put(token, principal, expires_at, generation)

        future.add_done_callback(done)
        return future

    def forget_user(self, user_id: int) -> None:
        self.generation += 1
        stale = [k for k, e in self._entries.items() if e.principal.user_id == user_id]
        for token in stale:
            del self._entries[token]
        self._users.pop(user_id, None)

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()
        self._users.clear()

    def _on_notify(self, payload: str) -> None:
        try:
            self.forget_user(int(payload))
        except ValueError:
            self.clear()
