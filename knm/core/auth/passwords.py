"""Password hashing with argon2; the cost comes from config so tests stay fast.

Hashing is CPU work that takes tens of milliseconds by design: it runs in a small thread pool
of its own (argon2 releases the GIL), never on the event loop, so logins in flight never hold
up other requests. The pool is bounded; logins beyond it queue."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from knm.core.config import KnmConfig
from knm.core.errors import Invalid

MIN_PASSWORD_LENGTH = 8
T = TypeVar("T")


def make_hasher(config: KnmConfig) -> PasswordHasher:
    return PasswordHasher(
        time_cost=config.argon2_time_cost,
        memory_cost=config.argon2_memory_cost,
        parallelism=config.argon2_parallelism,
    )


def pool_size(config: KnmConfig) -> int:
    return config.hash_workers or min(4, os.cpu_count() or 1)


class HashPool:
    """Hashes and verifies passwords on its own bounded threads."""

    def __init__(self, hasher: PasswordHasher, workers: int) -> None:
        self.hasher = hasher
        self.workers = workers
        self._executor: ThreadPoolExecutor | None = None

    async def hash(self, password: str) -> str:
        return await self._run(self.hasher.hash, password)

    async def verify(self, stored_hash: str, password: str) -> bool:
        return await self._run(verify, self.hasher, stored_hash, password)

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self.workers, thread_name_prefix="knm-hash"
            )
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        """Let the threads go (a later hash starts them again)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None


def verify(hasher: PasswordHasher, stored_hash: str, password: str) -> bool:
    try:
        return hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# Verifying against a real hash when the user does not exist keeps response time from telling
# which usernames exist.
def dummy_hash(hasher: PasswordHasher) -> str:
    return hasher.hash("knm-no-such-user")


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 1024:
        raise Invalid("password must be at most 1024 characters")
