"""The delivery worker: claims due outbox rows and sends them, apart from the tasks.

One per process that runs tasks (``Knm._start_engine``). It wakes on ``NOTIFY
knm_notifications`` (sent in the transaction that queued the rows, so it arrives once they are
visible) and polls as well, in case a notice was missed. Claims take rows with ``FOR UPDATE
SKIP LOCKED`` under a lease, so any number of processes share the outbox and a process killed
mid-send leaves its rows to be sent again (same idempotency key) once the lease runs out.
Sends run concurrently up to ``concurrency``; each is bounded by the target's timeout, so a
slow or failing receiver delays only its own deliveries, never a task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
import msgspec

from knm.core.crypto import DecryptionError, Keyring
from knm.core.db import UNAVAILABLE
from knm.core.notifications import outbox, redact, store
from knm.core.notifications.email import EmailSender
from knm.core.notifications.targets import Message, Outcome, Sender
from knm.core.notifications.webhook import SlackSender, WebhookSender

if TYPE_CHECKING:
    from knm.core.listen import Listener

log = logging.getLogger("knm.notifications")

_encode = msgspec.json.Encoder(order="deterministic").encode


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """The worker's knobs (``KnmConfig.notify_*``)."""

    #: Seconds a receiver gets to answer one attempt.
    timeout: float = 10.0
    #: Seconds a claim lasts; past it another process may send the row again.
    lease: float = 60.0
    #: Seconds between looks at the outbox when no NOTIFY came.
    poll: float = 2.0
    #: Backoff after the first failure, doubling per attempt up to ``backoff_cap``.
    backoff_base: float = 5.0
    backoff_cap: float = 600.0
    #: Attempts before a delivery is dead-lettered.
    max_attempts: int = 10
    #: Sends in flight at once, per process.
    concurrency: int = 32
    #: Days delivered and dead deliveries are kept.
    retention_days: int = 30


class DeliveryWorker:
    def __init__(
        self,
        pool: asyncpg.Pool,
        keyring: Keyring,
        settings: Settings,
        *,
        listener: Listener | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.pool = pool
        self.keyring = keyring
        # A lease shorter than a send (a mail may take three timeouts) would have a second
        # process send every slow row again.
        self.lease = max(settings.lease, settings.timeout * 3 + 1)
        self.settings = settings
        self.listener = listener
        self.worker_id = worker_id or (
            f"{socket.gethostname()}:{os.getpid()}:notify:{uuid.uuid4().hex[:6]}"
        )
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._client: httpx.AsyncClient | None = None
        self._senders: dict[str, Sender] = {}
        self._last_prune = 0.0

    async def start(self) -> None:
        redact.install()
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.settings.timeout),
            limits=httpx.Limits(max_connections=self.settings.concurrency),
        )
        self._senders = {
            "webhook": WebhookSender(self._client),
            "slack": SlackSender(self._client),
            "email": EmailSender(self.settings.timeout),
        }
        if self.listener is not None:
            await self.listener.subscribe(outbox.CHANNEL, lambda _payload: self._wake.set())
        self._loop_task = asyncio.get_running_loop().create_task(
            self._run(), name="knm-notification-delivery"
        )

    def wake(self) -> None:
        self._wake.set()

    async def stop(self, grace: float = 5.0) -> None:
        """Stop claiming; sends in flight get ``grace`` seconds, then are abandoned (their rows
        go out again after the lease, from this process's next start or another one)."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(BaseException):
                await self._loop_task
            self._loop_task = None
        if self._sends:
            _, pending = await asyncio.wait(set(self._sends), timeout=grace)
            for job in pending:
                job.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()
            self._client = None

    async def _run(self) -> None:
        while True:
            # Cleared before the claim, so a NOTIFY that arrives during it is not lost.
            self._wake.clear()
            try:
                claimed = await self.claim_once()
            except UNAVAILABLE as exc:
                log.warning("notifications: the database is unavailable (%s)", exc)
                claimed = 0
            except Exception:
                log.exception("notifications: claiming deliveries failed")
                claimed = 0
            await self._maybe_prune()
            if claimed:
                # More may be due: look again as soon as a slot frees up.
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.poll)

    async def claim_once(self) -> int:
        """Claim what free slots allow and start sending it; how many were claimed."""
        await self._slots.acquire()
        self._slots.release()
        free = self._free()
        items = await outbox.claim(
            self.pool, worker_id=self.worker_id, lease=self.lease, limit=free
        )
        for item in items:
            await self._slots.acquire()
            job = asyncio.get_running_loop().create_task(self._deliver(item))
            self._sends.add(job)
            job.add_done_callback(self._sends.discard)
        return len(items)

    def _free(self) -> int:
        return max(1, self.settings.concurrency - len(self._sends))

    async def _deliver(self, item: outbox.Claimed) -> None:
        try:
            await self.deliver(item)
        except UNAVAILABLE as exc:
            # The row stays claimed until its lease runs out, then goes out again.
            log.warning("notifications: delivery %s not recorded (%s)", item.id, exc)
        except Exception:
            log.exception("notifications: delivery %s failed unexpectedly", item.id)
        finally:
            self._slots.release()

    async def deliver(self, item: outbox.Claimed) -> str:
        """Send one claimed delivery and record the attempt; the state it is left in."""
        started = time.monotonic()
        secret = ""
        try:
            secret = store.unseal(self.keyring, item.sealed)
            outcome = await self._send(item, secret)
        except DecryptionError as exc:
            outcome = Outcome(ok=False, error=exc.error)
        latency_ms = int((time.monotonic() - started) * 1000)
        error = outcome.error
        if error and secret:
            # A Slack URL or a password can surface in an error's text; it never reaches the log.
            error = error.replace(secret, "***")
        retry_in = None
        if not outcome.ok and item.attempt < self.settings.max_attempts:
            retry_in = outbox.backoff(
                item.attempt, self.settings.backoff_base, self.settings.backoff_cap
            )
        state = await outbox.record_attempt(
            self.pool,
            item,
            worker_id=self.worker_id,
            ok=outcome.ok,
            status_code=outcome.status_code,
            latency_ms=latency_ms,
            error=error,
            retry_in=retry_in,
        )
        if state == "dead":
            log.warning(
                "notification %s (%s) to subscription %s is dead after %d attempts: %s",
                item.id,
                item.event,
                item.subscription_id,
                item.attempt,
                error,
            )
        return state

    async def _send(self, item: outbox.Claimed, secret: str) -> Outcome:
        sender = self._senders.get(item.target_type)
        if sender is None:
            return Outcome(ok=False, error=f"unknown target type {item.target_type!r}")
        message = Message(
            event=item.event,
            idempotency_key=item.idempotency_key,
            payload=item.payload,
            body=_encode(item.payload),
        )
        return await sender(item.target, secret, message)

    async def _maybe_prune(self) -> None:
        now = time.monotonic()
        if now - self._last_prune < 3600:
            return
        self._last_prune = now
        with contextlib.suppress(Exception):
            await outbox.prune(self.pool, self.settings.retention_days)


def settings_of(config: Any) -> Settings:
    return Settings(
        timeout=config.notify_timeout,
        lease=config.notify_lease,
        poll=config.notify_poll,
        backoff_base=config.notify_backoff_base,
        backoff_cap=config.notify_backoff_cap,
        max_attempts=config.notify_max_attempts,
        concurrency=config.notify_concurrency,
        retention_days=config.notify_retention_days,
    )
