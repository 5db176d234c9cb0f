"""The socket side: a threaded HTTP/1.1 server on loopback, and ``KubeStandin``."""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import unquote, urlsplit

import yaml

from knm.testing.k8s import errors
from knm.testing.k8s.api import KubeApi, Request, Response
from knm.testing.k8s.cluster import Cluster, HistoryEntry, RequestRecord, Timings
from knm.testing.k8s.objects import Node, Pdb, Pod, Taint


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 so that the client's urllib3 pool keeps connections alive, as
    # it would against a real API server.
    protocol_version = "HTTP/1.1"
    server_version = "knm-k8s-standin/1"
    server: _Server

    def _serve(self) -> None:
        url = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=unquote(url.path),
            query=url.query,
            headers=dict(self.headers.items()),
            body=self._read_body(),
        )
        try:
            response = self.server.api.handle(request)
        except Exception as exc:  # a stand-in bug must surface as a 500, not a hang
            response = Response(500, errors.internal_error(f"{type(exc).__name__}: {exc}").status)
        data = response.encode()
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", str(uuid.uuid4()))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:
        # The cluster keeps its own request log; stderr noise helps no one.
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], api: KubeApi) -> None:
        self.api = api
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        with self._connections_lock:
            self._connections.add(conn)
        return conn, addr

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that dies mid-request (a SIGKILLed knm worker) is not the stand-in's error.
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    def drop_connections(self) -> None:
        # Keep-alive handler threads would otherwise keep serving after stop().
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class KubeStandin:
    """A Kubernetes API server stand-in on ``127.0.0.1``; use as a context manager.

    ``token`` makes the server demand ``Authorization: Bearer <token>`` (401
    otherwise); the ``/_standin/...`` control endpoints are never authenticated.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        token: str | None = None,
        timings: Timings | None = None,
        seed: int | None = None,
        cluster: Cluster | None = None,
    ) -> None:
        self.cluster = cluster or Cluster(timings, seed=seed)
        self.token = token
        self.api = KubeApi(self.cluster, token)
        self._host = host
        self._requested_port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("stand-in already started")
        self._server = _Server((self._host, self._requested_port), self.api)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"k8s-standin:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.drop_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("stand-in not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def timings(self) -> Timings:
        return self.cluster.timings

    # --------------------------------------------------------------- kubeconfig

    def kubeconfig_dict(
        self, user_token: str | None = None, context: str = "standin"
    ) -> dict[str, Any]:
        token = user_token if user_token is not None else (self.token or "t")
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": f"{context}-user", "user": {"token": token}}],
            "contexts": [
                {
                    "name": context,
                    "context": {
                        "cluster": context,
                        "user": f"{context}-user",
                        "namespace": "default",
                    },
                }
            ],
            "current-context": context,
        }

    def kubeconfig(self, user_token: str | None = None, context: str = "standin") -> str:
        """Kubeconfig YAML pointing at this server; the token defaults to the server's."""
        return yaml.safe_dump(self.kubeconfig_dict(user_token, context), sort_keys=False)

    # ------------------------------------------- the cluster model, delegated

    def add_node(
        self,
        name: str,
        *,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        addresses: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        ready: bool = True,
        unschedulable: bool = False,
        taints: Sequence[Taint | Mapping[str, Any]] = (),
    ) -> Node:
        return self.cluster.add_node(
            name,
            labels=labels,
            annotations=annotations,
            addresses=addresses,
            ready=ready,
            unschedulable=unschedulable,
            taints=taints,
        )

    def add_pod(
        self,
        namespace: str,
        name: str,
        node: str | None,
        *,
        owner_kind: str | None = "ReplicaSet",
        owner_name: str | None = None,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        mirror: bool = False,
        empty_dir: bool = False,
        ready: bool = True,
        grace_period: int = 30,
    ) -> Pod:
        return self.cluster.add_pod(
            namespace,
            name,
            node,
            owner_kind=owner_kind,
            owner_name=owner_name,
            labels=labels,
            annotations=annotations,
            mirror=mirror,
            empty_dir=empty_dir,
            ready=ready,
            grace_period=grace_period,
        )

    def add_pdb(
        self,
        namespace: str,
        name: str,
        selector: Mapping[str, str] | None,
        *,
        min_available: int | str | None = None,
        max_unavailable: int | str | None = None,
    ) -> Pdb:
        return self.cluster.add_pdb(
            namespace, name, selector, min_available=min_available, max_unavailable=max_unavailable
        )

    def set_ready(self, node: str, ready: bool) -> None:
        self.cluster.set_ready(node, ready)

    def reboot(self, node: str, duration: float | None = None, *, by: str = "test") -> None:
        self.cluster.reboot(node, duration, by=by)

    @property
    def history(self) -> list[HistoryEntry]:
        """Every node state change, eviction, deletion and reboot, in order."""
        return self.cluster.history

    def node(self, name: str) -> Node:
        return self.cluster.node(name)

    def pods_on(self, node: str) -> list[Pod]:
        return self.cluster.pods_on(node)

    @property
    def requests(self) -> list[RequestRecord]:
        return self.cluster.requests
