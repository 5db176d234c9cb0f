"""Real notification receivers on loopback for tests: an HTTP server that checks webhook
signatures and answers as told (fails, hangs), and an SMTP server (aiosmtpd).

Both run in threads of their own, so they answer whichever event loop the sender runs on.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import ipaddress
import json
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgspec


class Received(msgspec.Struct):
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes
    #: Whether ``X-Knm-Signature`` verified under the receiver's secret (None: no secret set).
    signature_ok: bool | None
    #: The status the receiver answered with (None: it hung and never answered).
    answered: int | None
    #: ``time.time()`` when the request's body was read.
    at: float = 0.0

    def json(self) -> Any:
        return json.loads(self.body)


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The recipe of docs/notifications.md, written independently of knm's signing module."""
    timestamp = headers.get("x-knm-timestamp", "")
    signature = headers.get("x-knm-signature", "")
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest("sha256=" + expected.hexdigest(), signature)


class _Server(ThreadingHTTPServer):
    # The default backlog of 5 drops connections a concurrent sender opens at once (their SYN
    # is retried a second later): a receiver that looks slow when it is not.
    request_queue_size = 128


class WebhookReceiver:
    """Answers each request with the next of ``plan`` (an HTTP status, or ``"hang"``: no
    answer until the receiver stops), then with ``then`` for the rest."""

    def __init__(
        self, secret: str = "", plan: list[int | str] | None = None, then: int | str = 200
    ) -> None:
        self.secret = secret
        self.plan = list(plan or [])
        self.then = then
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/hook"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                at = time.time()
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    answer = receiver.plan.pop(0) if receiver.plan else receiver.then
                    signed = verify(receiver.secret, headers, body) if receiver.secret else None
                    seen = Received(
                        path=self.path,
                        headers=headers,
                        body=body,
                        signature_ok=signed,
                        answered=None if answer == "hang" else int(answer),
                        at=at,
                    )
                    receiver.received.append(seen)
                if answer == "hang":
                    receiver._stopping.wait(60)
                    return
                # A bad signature is refused, as a real receiver would.
                status = 401 if signed is False else int(answer)
                seen.answered = status
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)


def self_signed(directory: Path) -> tuple[Path, ssl.SSLContext]:
    """A certificate for 127.0.0.1 (its own CA) written to ``directory``, and a server context
    serving it; point ``SSL_CERT_FILE`` at the file for clients to trust it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "knm test receiver")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file = directory / "receiver.pem"
    key_file = directory / "receiver.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return cert_file, context


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SmtpReceiver:
    """An SMTP server (aiosmtpd) on loopback, plain, that keeps every mail it accepts; with
    ``username``/``password`` it requires that login (over the plain connection: a test)."""

    def __init__(
        self,
        username: str = "",
        password: str = "",
        *,
        tls: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
    ) -> None:
        self.username = username
        self.password = password
        #: With ``tls``: STARTTLS required before anything else, or TLS from the first byte.
        self.tls = tls
        self.implicit_tls = implicit_tls
        self.mails: list[Message] = []
        self.logins: list[str] = []
        self._controller: Any = None
        self.port = 0

    def start(self) -> SmtpReceiver:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        receiver = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                receiver.mails.append(message_from_bytes(envelope.original_content))
                return "250 OK"

        def authenticate(
            server: Any, session: Any, envelope: Any, mechanism: str, data: Any
        ) -> Any:
            if not isinstance(data, LoginPassword):
                return AuthResult(success=False, handled=False)
            login = data.login.decode()
            ok = login == receiver.username and data.password.decode() == receiver.password
            if ok:
                receiver.logins.append(login)
            return AuthResult(success=ok, handled=False)

        self.port = free_port()
        options: dict[str, Any] = {}
        if self.username:
            # aiosmtpd knows a connection is encrypted only after its own STARTTLS.
            require_tls = self.tls is not None and not self.implicit_tls
            options = {"authenticator": authenticate, "auth_require_tls": require_tls}
        if self.tls is not None and self.implicit_tls:
            options["ssl_context"] = self.tls
        elif self.tls is not None:
            options.update(tls_context=self.tls, require_starttls=True)
        with warnings.catch_warnings():
            # aiosmtpd warns that AUTH without TLS is unsafe: true, and the point of a test.
            warnings.simplefilter("ignore")
            self._controller = Controller(
                Handler(),
                hostname="127.0.0.1",
                port=self.port,
                server_hostname="knm-test-smtp",
                **options,
            )
            self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpReceiver:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def received_keys(receiver: WebhookReceiver) -> Iterator[str]:
    for seen in receiver.snapshot():
        yield seen.headers.get("idempotency-key", "")
