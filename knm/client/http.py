"""The sync SDK's HTTP: HTTP/1.1 on the standard library (``http.client``), one keep-alive
connection per client, TLS through ``ssl``, and the environment honoured as httpx honours it
(``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``, ``SSL_CERT_FILE``,
``SSL_CERT_DIR``; certifi's bundle otherwise, when installed).

Why not httpx here: importing httpx costs more than a bare Python start (its command-line extra
imports click, rich and pygments when they are installed, and httpcore imports trio and anyio),
which was two thirds of a ``knm task list``. ``ssl`` is imported only for an https URL;
``knm.client.environment`` reads proxies and TLS trust. The async client keeps httpx; a
``transport`` given to ``Client`` (an httpx transport, for tests and special set-ups) makes
this module hand the requests to httpx instead (``HttpxSession``).

Every failure to get an answer is a ``TransportError``.
"""

from __future__ import annotations

import base64
import http.client
import re
import select
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, unquote, urlencode, urlsplit

from knm import __version__
from knm.client.environment import proxy_for, ssl_context
from knm.client.errors import TransportError

if TYPE_CHECKING:
    import ssl

    import httpx

USER_AGENT = f"knm-client/{__version__}"
#: Methods repeated once on a fresh connection when a reused one turns out closed mid-request.
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
#: Seconds a kept-alive connection may idle before it is dropped rather than reused (httpx's
#: default): well inside the server's keep-alive (``knm serve`` keeps 65 s), so the client is the
#: side that lets an idle connection go, not a server closing it as a request goes out.
KEEPALIVE_EXPIRY = 5.0
#: What a connection error looks like when the server closed a kept-alive connection.
CLOSED = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
CHUNK = 64 * 1024
#: A ``%`` that does not start a percent-escape (it is sent as ``%25``, as httpx does).
_LONE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
#: What a path keeps as it is: RFC 3986's unreserved and sub-delims, ``:``, ``@``, ``/``, and
#: existing escapes; ``?``, ``#``, spaces and the rest are percent-encoded.
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"


class Response:
    """An answer read whole, or (``stream``) one whose body is read as it comes."""

    def __init__(self, status: int, reason: str, headers: Mapping[str, str], content: bytes):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode(charset_of(self.headers), errors="replace")


class Streamed(Response):
    def __init__(
        self, status: int, reason: str, headers: Mapping[str, str], chunks: Iterator[bytes]
    ):
        super().__init__(status, reason, headers, b"")
        self._chunks = chunks

    def read(self) -> bytes:
        self.content = b"".join(self._chunks)
        return self.content

    def iter_bytes(self) -> Iterator[bytes]:
        yield from self._chunks


class Session(Protocol):
    """What ``Client`` needs of its HTTP: ``HttpSession`` or ``HttpxSession``."""

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response: ...

    def stream(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:  # a context manager of Streamed
        ...

    def close(self) -> None: ...


def charset_of(headers: Mapping[str, str]) -> str:
    for part in (headers.get("content-type") or "").split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            return value.strip('"')
    return "utf-8"


def target_of(base_path: str, path: str, params: Mapping[str, Any] | None) -> str:
    """The request target: the base URL's path, then ``path`` percent-encoded, then the query."""
    target = _LONE_PERCENT.sub("%25", quote(base_path + path, safe=_PATH_SAFE))
    if params:
        target += "?" + urlencode(params, doseq=True)
    return target


# --- the session ----------------------------------------------------------------------------


class HttpSession:
    """Requests to one server over one kept-alive connection (re-opened when the server has
    closed it). Not for use by several threads at once, like the client it serves."""

    def __init__(self, base_url: str, *, timeout: float | None = 30, verify: Any = True) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if self.scheme == "https" else 80)
        self.base_path = parts.path.rstrip("/")
        self.timeout = timeout
        self.verify = verify
        self._context: ssl.SSLContext | None = None
        self._conn: http.client.HTTPConnection | None = None
        #: When the kept connection's last answer ended (``time.monotonic``).
        self._idle_since = 0.0
        #: The proxy's ``scheme://host:port`` when requests go through it as absolute URLs
        #: (plain http through a proxy); tunnelled and direct connections leave it empty.
        self._absolute = ""
        self._proxy_headers: dict[str, str] = {}
        netloc = self.host if ":" not in self.host else f"[{self.host}]"
        default = 443 if self.scheme == "https" else 80
        self._origin = f"{self.scheme}://{netloc}" + (
            "" if self.port == default else f":{self.port}"
        )

    @property
    def ssl_context(self) -> ssl.SSLContext:
        if self._context is None:
            self._context = ssl_context(self.verify)
        return self._context

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        answer = self._send(method, path, params, content, headers)
        try:
            body = answer.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise transport_error(exc, self._origin) from exc
        if answer.will_close:
            self.close()
        self._idle_since = time.monotonic()
        return Response(answer.status, answer.reason, answer.headers, body)

    @contextmanager
    def stream(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Iterator[Streamed]:
        answer = self._send(method, path, params, None, headers)

        def chunks() -> Iterator[bytes]:
            try:
                while chunk := answer.read1(CHUNK):
                    yield chunk
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise transport_error(exc, self._origin) from exc

        try:
            yield Streamed(answer.status, answer.reason, answer.headers, chunks())
        finally:
            # A body left unread leaves the connection mid-answer: start afresh next time.
            if not answer.isclosed() or answer.will_close:
                self.close()
            self._idle_since = time.monotonic()

    def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        content: bytes | None,
        headers: Mapping[str, str] | None,
    ) -> http.client.HTTPResponse:
        target = target_of(self.base_path, path, params)
        sent = {"User-Agent": USER_AGENT, **(headers or {})}
        for attempt in (1, 2):
            reused = self._conn is not None and self._usable(self._conn)
            conn = self._connection()
            try:
                extra = self._proxy_headers if self._absolute else {}
                conn.request(method, self._absolute + target, body=content, headers=sent | extra)
                return conn.getresponse()
            except CLOSED as exc:
                self.close()
                if reused and attempt == 1 and method in IDEMPOTENT:
                    continue  # the server closed the idle connection as we reused it
                raise transport_error(exc, self._origin) from exc
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise transport_error(exc, self._origin) from exc
        raise AssertionError("unreachable")

    def _usable(self, conn: http.client.HTTPConnection) -> bool:
        """Whether a kept connection can carry the next request: one the server has closed (or
        that has bytes nobody asked for) reads as ready, so it is dropped, as httpcore does."""
        sock = conn.sock
        if sock is None or time.monotonic() - self._idle_since > KEEPALIVE_EXPIRY:
            self.close()
            return False
        try:
            if hasattr(select, "poll"):
                poller = select.poll()
                poller.register(sock, select.POLLIN)
                ready = bool(poller.poll(0))
            else:
                ready = bool(select.select([sock], [], [], 0)[0])
        except (OSError, ValueError):
            ready = True
        if ready:
            self.close()
        return not ready

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is not None:
            return self._conn
        proxy = proxy_for(self.scheme, self.host, self.port)
        self._absolute = ""
        self._proxy_headers = {}
        if proxy is None:
            self._conn = self._open(self.scheme, self.host, self.port)
            return self._conn
        parts = urlsplit(proxy)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TransportError(
                f"proxy {parts.scheme}://{parts.hostname} is not supported: use an http:// proxy"
            )
        proxy_port = parts.port or (443 if parts.scheme == "https" else 80)
        auth = {}
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            auth["Proxy-Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        if self.scheme == "https":
            if parts.scheme == "https":
                raise TransportError("an https:// proxy cannot tunnel https: use an http:// proxy")
            conn = self._open("https", parts.hostname, proxy_port)
            conn.set_tunnel(self.host, self.port, headers=auth)
        else:
            # Plain http through a proxy: the proxy is sent absolute URLs (and its credentials).
            conn = self._open(parts.scheme, parts.hostname, proxy_port)
            self._absolute = self._origin
            self._proxy_headers = auth
        self._conn = conn
        return conn

    def _open(self, scheme: str, host: str, port: int) -> http.client.HTTPConnection:
        if scheme == "https":
            return http.client.HTTPSConnection(
                host, port, timeout=self.timeout, context=self.ssl_context
            )
        return http.client.HTTPConnection(host, port, timeout=self.timeout)


def transport_error(exc: BaseException, server: str) -> TransportError:
    """No answer from ``server``: the error names it, since "connection refused" alone does
    not say which URL (a stale ``KNM_URL``, a login to another server) was tried."""
    return TransportError(f"no answer from {server}: {exc or type(exc).__name__}")


# --- through httpx, for a caller's own transport ----------------------------------------------


class HttpxSession:
    """``HttpSession``'s interface over ``httpx.Client``, for a ``transport`` given to
    ``Client`` (an httpx transport: a mock, a WSGI app, a custom pool)."""

    def __init__(
        self,
        base_url: str,
        *,
        transport: httpx.BaseTransport,
        timeout: float | None = 30,
        verify: Any = True,
    ) -> None:
        import httpx

        self._httpx = httpx
        self._server = base_url
        self._client = httpx.Client(
            base_url=base_url, transport=transport, timeout=timeout, verify=verify
        )

    def close(self) -> None:
        self._client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        try:
            answer = self._client.request(
                method, path, params=params, content=content, headers=headers
            )
        except self._httpx.HTTPError as exc:
            raise transport_error(exc, self._server) from exc
        return Response(answer.status_code, answer.reason_phrase, answer.headers, answer.content)

    @contextmanager
    def stream(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Iterator[Streamed]:
        def chunks(answer: httpx.Response) -> Iterator[bytes]:
            try:
                yield from answer.iter_bytes()
            except self._httpx.HTTPError as exc:
                raise transport_error(exc, self._server) from exc

        try:
            with self._client.stream(method, path, params=params, headers=headers) as answer:
                yield Streamed(
                    answer.status_code, answer.reason_phrase, answer.headers, chunks(answer)
                )
        except self._httpx.HTTPError as exc:
            raise transport_error(exc, self._server) from exc
