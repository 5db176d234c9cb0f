"""``AsyncClient``: the asynchronous SDK, over ``httpx.AsyncClient``. Every endpoint method of
``Client`` exists here too and returns an awaitable of the same result."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Iterable
from typing import Any, TypeVar

import httpx

from knm.client import models as m
from knm.client.base import Endpoints
from knm.client.calls import DEFAULT_PREFIX, DEFAULT_URL, Call, check_raw
from knm.client.families import Families
from knm.client.http import IDEMPOTENT, transport_error
from knm.client.watches import AsyncWatches

T = TypeVar("T")
#: httpx's errors for a connection closed under a request: an idempotent one is sent once more.
CLOSED = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


class AsyncClient(Endpoints, Families):
    """Like ``Client``; use ``async with AsyncClient(...) as client`` and ``await`` each call."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = 30,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: bool | str = True,
    ) -> None:
        self._address(url, token, prefix)
        kwargs: dict[str, Any] = {"timeout": timeout, "verify": verify}
        if transport is not None:
            kwargs["transport"] = transport
        self._http = httpx.AsyncClient(base_url=self.url, **kwargs)
        self._families()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    def _do(self, call: Call[T]) -> T:
        # Endpoints are written once for both clients; here each returns an awaitable.
        return self._perform(call)  # type: ignore[return-value]

    async def _perform(self, call: Call[T]) -> T:
        path, headers, content = self._request(call)
        for attempt in (1, 2):
            try:
                response = await self._http.request(
                    call.method, path, params=call.params, content=content, headers=headers
                )
                break
            except CLOSED as exc:
                if attempt == 1 and call.method in IDEMPOTENT:
                    continue  # a kept-alive connection the server closed as it was reused
                raise transport_error(exc, self.url) from exc
            except httpx.HTTPError as exc:
                raise transport_error(exc, self.url) from exc
        return self._result(
            call, response.status_code, response.reason_phrase, response.headers,
            response.content, lambda: response.text,
        )  # fmt: skip

    async def stream_output(
        self, task_id: str, node: str, stream: str = "stdout", *, start: int = 0
    ) -> AsyncIterator[bytes]:
        """A node's stored output in chunks, from byte ``start`` (a ``Range`` request)."""
        path, params, headers = self._output_request(task_id, node, stream, start)
        try:
            async with self._http.stream("GET", path, params=params, headers=headers) as response:
                if response.status_code >= 400:
                    await response.aread()
                    check_raw(
                        response.status_code,
                        response.content,
                        response.reason_phrase,
                        response.headers.get("retry-after"),
                    )
                async for chunk in response.aiter_bytes():
                    yield chunk
        except httpx.HTTPError as exc:
            raise transport_error(exc, self.url) from exc

    async def wait(
        self, task_id: str, *, timeout: float | None = None, interval: float = 0.5
    ) -> m.TaskStatus:
        """Poll until the task is finished; ``TimeoutError`` after ``timeout`` seconds."""
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            status: m.TaskStatus = await self._awaited(self.task(task_id))
            if status.finished:
                return status
            if end is not None and time.monotonic() + interval > end:
                raise TimeoutError(f"task {task_id} is still {status.status} after {timeout} s")
            await asyncio.sleep(interval)

    def watch(
        self, task_id: str, *, since: int = 0, interval: float = 0.5, websocket: bool = True
    ) -> AsyncIterator[m.Event]:
        """The task's events after ``since``, live, ending with ``complete``: ``watch_many`` of
        one task."""
        watches = self.watch_many([task_id], since=since, interval=interval, websocket=websocket)
        return aiter(watches)

    def watch_many(
        self,
        task_ids: Iterable[str] = (),
        *,
        since: int = 0,
        interval: float = 0.5,
        websocket: bool = True,
    ) -> AsyncWatches:
        """``Client.watch_many``: several tasks' events on one connection, with ``add`` while
        iterating; ``async with`` it, and ``async for`` over it."""
        return AsyncWatches(self, task_ids, since=since, interval=interval, websocket=websocket)

    @staticmethod
    async def _awaited(value: Awaitable[T] | T) -> T:
        return await value  # type: ignore[misc]
