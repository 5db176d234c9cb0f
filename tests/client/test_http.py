"""The sync SDK's standard-library HTTP against small servers on loopback: kept-alive
connections, a connection the server closed while idle, timeouts, TLS verification, and proxies
from the environment (absolute URLs for http, a CONNECT tunnel for https, NO_PROXY)."""

from __future__ import annotations

import json
import select
import socket
import socketserver
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from knm.client import Client, TransportError
from knm.client.calls import Call, same
from knm.client.http import target_of


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.connections = 0
        self.requests: list[dict[str, Any]] = []
        #: Close each connection after its first answer, without saying so (an idle timeout).
        self.drop_after_answer = False
        self.tls: ssl.SSLContext | None = None
        #: Set when the server has closed a connection.
        self.closed = threading.Event()

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        self.connections += 1
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True)
        return sock, address

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        self.closed.set()

    def handle_error(self, *_: Any) -> None:
        pass  # a client that gave up (the timeout test) breaks the pipe: nothing to report

    @property
    def port(self) -> int:
        return self.server_address[1]


class Api(BaseHTTPRequestHandler):
    """Answers every request with the envelope ``{"data": {what was asked}}``."""

    protocol_version = "HTTP/1.1"
    server: Server

    def log_message(self, *_: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        seen = {
            "method": self.command,
            "target": self.path,
            "body": self.rfile.read(length).decode(),
            "proxy_authorization": self.headers.get("proxy-authorization"),
            "authorization": self.headers.get("authorization"),
        }
        self.server.requests.append(seen)
        if self.path.endswith("/slow"):
            threading.Event().wait(5)
        content = json.dumps({"data": seen}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)
        if self.server.drop_after_answer:
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = _answer


class Proxy(Api):
    """A forward proxy stand-in: answers absolute-URL requests itself, tunnels CONNECT."""

    def do_CONNECT(self) -> None:
        self.server.requests.append(
            {"method": "CONNECT", "target": self.path,
             "proxy_authorization": self.headers.get("proxy-authorization")}
        )  # fmt: skip
        host, _, port = self.path.rpartition(":")
        upstream = socket.create_connection((host, int(port)))
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        sockets = [self.connection, upstream]
        while True:
            ready, _, _ = select.select(sockets, [], [], 5)
            if not ready:
                break
            for sock in ready:
                data = sock.recv(65536)
                if not data:
                    upstream.close()
                    self.close_connection = True
                    return
                (upstream if sock is self.connection else self.connection).sendall(data)


@pytest.fixture
def api() -> Iterator[Server]:
    server = Server(Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy() -> Iterator[Server]:
    server = Server(Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_api(api: Server, certificate: tuple[Path, Path]) -> Server:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    api.tls = context
    return api


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def test_requests_share_one_kept_alive_connection(api: Server) -> None:
    with Client(f"http://127.0.0.1:{api.port}", "tok") as client:
        first = client.features()
        client.update_settings("ssh", enabled=True)
        client.features()
    assert api.connections == 1 and len(api.requests) == 3
    assert first["authorization"] == "Bearer tok"
    assert api.requests[1]["method"] == "PUT" and json.loads(api.requests[1]["body"]) == {
        "enabled": True
    }


def test_a_connection_the_server_closed_while_idle_is_replaced_even_for_a_post(
    api: Server,
) -> None:
    api.drop_after_answer = True
    with Client(f"http://127.0.0.1:{api.port}") as client:
        client.features()
        assert api.closed.wait(10)
        # The server closed the socket after answering; the POST must not be lost to it.
        posted = client._do(call("POST", "/things", json={"name": "a"}))
    assert api.connections == 2
    assert [r["method"] for r in api.requests] == ["GET", "POST"]
    assert posted["body"] == '{"name":"a"}'


def test_a_connection_idle_past_the_keepalive_expiry_is_let_go_not_reused(
    api: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Reusing it would race the server's own idle timeout; 0 s makes every pause too long.
    monkeypatch.setattr("knm.client.http.KEEPALIVE_EXPIRY", 0.0)
    with Client(f"http://127.0.0.1:{api.port}") as client:
        client.features()
        client._do(call("POST", "/things", json={"name": "a"}))
    assert api.connections == 2
    assert [r["method"] for r in api.requests] == ["GET", "POST"]


def test_names_in_paths_and_query_values_are_percent_encoded(api: Server) -> None:
    with Client(f"http://127.0.0.1:{api.port}", prefix="/knm/api/v1") as client:
        client._do(call("GET", "/clusters/a b?#c%/nodes", params={"selector": "rack in (a,b)"}))
    assert api.requests[0]["target"] == (
        "/knm/api/v1/clusters/a%20b%3F%23c%25/nodes?selector=rack+in+%28a%2Cb%29"
    )
    assert target_of("", "/x/%41", None) == "/x/%41"  # an escape already made stays


def test_a_server_that_does_not_answer_in_time_is_a_transport_error(api: Server) -> None:
    with (
        Client(f"http://127.0.0.1:{api.port}", timeout=0.5) as client,
        pytest.raises(TransportError) as late,
    ):
        client._do(call("GET", "/slow"))
    assert late.value.code == 0 and "timed out" in late.value.error


def call(method: str, path: str, json: Any = None, params: Any = None) -> Call[Any]:
    return Call(method, path, same, json=json, params=params)


def test_tls_is_verified_against_the_given_bundle_and_refused_otherwise(
    tls_api: Server, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"https://127.0.0.1:{tls_api.port}"
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with Client(url, timeout=5) as client, pytest.raises(TransportError) as refused:
        client.features()
    assert "CERTIFICATE_VERIFY_FAILED" in refused.value.error
    with Client(url, verify=str(certificate[0])) as client:
        assert client.features()["method"] == "GET"
    with Client(url, verify=False) as client:
        assert client.features()["method"] == "GET"
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    with Client(url) as client:
        assert client.features()["method"] == "GET"


def test_http_goes_through_the_environments_proxy_with_its_credentials(
    proxy: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://me:s%40cret@127.0.0.1:{proxy.port}")
    with Client("http://knm.example:8080") as client:
        client.features()
        client.features()
    assert proxy.connections == 1
    assert proxy.requests[0]["target"] == "http://knm.example:8080/api/v1/features"
    assert proxy.requests[0]["proxy_authorization"] == "Basic bWU6c0BjcmV0"  # me:s@cret


def test_https_is_tunnelled_through_the_proxy_and_still_verified(
    proxy: Server, tls_api: Server, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("https_proxy", f"127.0.0.1:{proxy.port}")
    with Client(f"https://127.0.0.1:{tls_api.port}", verify=str(certificate[0])) as client:
        assert client.features()["target"] == "/api/v1/features"
    assert proxy.requests[0]["method"] == "CONNECT"
    assert proxy.requests[0]["target"] == f"127.0.0.1:{tls_api.port}"


def test_no_proxy_keeps_a_host_off_the_proxy(
    api: Server, proxy: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALL_PROXY", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.0/8")
    with Client(f"http://127.0.0.1:{api.port}") as client:
        client.features()
    assert len(api.requests) == 1 and proxy.requests == []


def test_an_unsupported_proxy_scheme_is_a_transport_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
    with Client("http://knm.example") as client, pytest.raises(TransportError) as refused:
        client.features()
    assert "socks5" in refused.value.error
