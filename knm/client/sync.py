"""``Client``: the synchronous SDK, over the standard library's HTTP (``knm.client.http``)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from knm.client import models as m
from knm.client.base import Endpoints
from knm.client.calls import DEFAULT_PREFIX, DEFAULT_URL, Call, check_raw
from knm.client.families import Families
from knm.client.http import HttpSession, HttpxSession, Session

if TYPE_CHECKING:
    import ssl

    import httpx

    from knm.client.watches import Watches

T = TypeVar("T")


class Client(Endpoints, Families):
    """A knm server's API. ``prefix`` is where the API is mounted (``/knm/api/v1`` when knm is
    embedded under ``/knm``); ``token`` is a JWT or an API token (``login`` sets one).

    ``timeout`` bounds the connection and each read (seconds; None waits forever). ``verify``
    checks the server's certificate: True against ``SSL_CERT_FILE``/``SSL_CERT_DIR`` or
    certifi's bundle, a path to a CA bundle (file or directory), an ``ssl.SSLContext``, or
    False. Proxies come from ``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY``/``NO_PROXY``. An httpx
    ``transport`` sends the requests through httpx instead (tests, special set-ups)."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        prefix: str = DEFAULT_PREFIX,
        timeout: float | None = 30,
        transport: httpx.BaseTransport | None = None,
        verify: bool | str | ssl.SSLContext = True,
    ) -> None:
        self._address(url, token, prefix)
        self._http: Session
        if transport is None:
            self._http = HttpSession(self.url, timeout=timeout, verify=verify)
        else:
            self._http = HttpxSession(self.url, transport=transport, timeout=timeout, verify=verify)
        self._families()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _do(self, call: Call[T]) -> T:
        path, headers, content = self._request(call)
        response = self._http.request(
            call.method, path, params=call.params, content=content, headers=headers
        )
        return self._result(
            call, response.status, response.reason, response.headers, response.content,
            lambda: response.text,
        )  # fmt: skip

    # --- streams and long waits -----------------------------------------------------------

    def stream_output(
        self, task_id: str, node: str, stream: str = "stdout", *, start: int = 0
    ) -> Iterator[bytes]:
        """A node's stored output in chunks, from byte ``start`` (a ``Range`` request)."""
        path, params, headers = self._output_request(task_id, node, stream, start)
        with self._http.stream("GET", path, params=params, headers=headers) as response:
            if response.status >= 400:
                check_raw(
                    response.status,
                    response.read(),
                    response.reason,
                    response.headers.get("retry-after"),
                )
            yield from response.iter_bytes()

    def download_output(
        self, task_id: str, node: str, target: str | Path | IO[bytes], stream: str = "stdout"
    ) -> int:
        """Save a node's output; a path that already holds part of it is continued (``Range``).
        Returns the bytes written."""
        if not isinstance(target, str | Path):
            return sum(
                target.write(chunk) or 0 for chunk in self.stream_output(task_id, node, stream)
            )
        path = Path(target)
        start = path.stat().st_size if path.exists() else 0
        written = 0
        with path.open("ab") as out:
            for chunk in self.stream_output(task_id, node, stream, start=start):
                written += out.write(chunk)
        return written

    def wait(
        self, task_id: str, *, timeout: float | None = None, interval: float = 0.5
    ) -> m.TaskStatus:
        """Poll until the task is finished; ``TimeoutError`` after ``timeout`` seconds."""
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.task(task_id)
            if status.finished:
                return status
            if end is not None and time.monotonic() + interval > end:
                raise TimeoutError(f"task {task_id} is still {status.status} after {timeout} s")
            time.sleep(interval)

    def watch(
        self, task_id: str, *, since: int = 0, interval: float = 0.5, websocket: bool = True
    ) -> Iterator[m.Event]:
        """The task's events after ``since``, live, ending with ``complete`` (see
        ``knm.client.watches``: ``watch_many`` of one task); ``websocket=False`` polls the event
        log instead."""
        watches = self.watch_many([task_id], since=since, interval=interval, websocket=websocket)
        return iter(watches)

    def watch_many(
        self,
        task_ids: Iterable[str] = (),
        *,
        since: int = 0,
        interval: float = 0.5,
        websocket: bool = True,
    ) -> Watches:
        """Several tasks' events on one connection, interleaved as they come (each task's in
        ``seq`` order, each once); ``add`` follows more tasks while iterating, such as a
        workflow's step tasks as its ``step`` events name them. Iteration ends once every task
        followed has sent its ``complete``. See ``knm.client.watches``.

            with knm.watch_many([workflow_id]) as watches:
                for event in watches:
                    if event.type == "step" and event.data.get("task_id"):
                        watches.add(event.data["task_id"])
        """
        from knm.client.watches import Watches  # websockets: only when watching

        return Watches(self, task_ids, since=since, interval=interval, websocket=websocket)
