"""KnmConfig: every setting of a knm process, read from ``KNM_*`` variables or a TOML file.

Precedence: keyword arguments, then ``KNM_*`` environment variables, then the TOML file named
by ``KNM_CONFIG``, then defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec
import platformdirs


def default_data_dir() -> Path:
    # As root, the embedded PostgreSQL runs as an unprivileged user that must reach its data
    # dir; root's home is usually 0700, and knm never opens directories it does not own.
    if os.geteuid() == 0:
        return Path("/var/lib/knm")
    return Path(platformdirs.user_data_dir("knm"))


class KnmConfig(msgspec.Struct, kw_only=True):
    """Settings of one knm process. Field names are the ``KNM_`` variables in lower case."""

    host: str = "127.0.0.1"
    port: int = 8080
    #: PostgreSQL URL; empty means the embedded server in ``data_dir``.
    database_url: str = ""
    data_dir: str = ""
    #: The one secret every key derives from; generated into the data dir when embedded.
    secret_key: str = ""
    #: Earlier secrets, still accepted for decrypting secrets stored before ``knm admin rotate-key``.
    previous_secret_keys: list[str] = msgspec.field(default_factory=list)
    #: Password of the ``admin`` user created on first start; generated and printed if empty.
    admin_password: str = ""
    #: Where knm's routes live inside the ASGI app (``/api/v1`` and ``/schema`` go below it).
    path_prefix: str = ""
    #: JWT lifetime in seconds.
    token_ttl: int = 86_400
    #: A login session's absolute lifetime in seconds: refreshing extends a session's tokens up
    #: to this long after its login, never further; then the user logs in again.
    session_max_age: int = 7 * 86_400
    argon2_time_cost: int = 3
    argon2_memory_cost: int = 65_536
    argon2_parallelism: int = 4
    #: Threads hashing and verifying passwords (off the event loop); 0 means one per CPU, at
    #: most 4. Logins beyond them wait their turn.
    hash_workers: int = 0
    #: Failed logins per (username, client) allowed within ``login_window`` seconds.
    login_max_failures: int = 5
    login_window: int = 300
    #: Addresses (or CIDR networks) of reverse proxies whose ``X-Forwarded-For`` and
    #: ``X-Forwarded-Proto`` are believed; ``*`` trusts every peer. Empty (the default) trusts
    #: none: the client is the TCP peer, for the login throttle and the audit log alike.
    forwarded_allow_ips: list[str] = msgspec.field(default_factory=list)
    #: Plugin names never to load.
    blocked_plugins: list[str] = msgspec.field(default_factory=list)
    #: Extra plugins to register, as ``module`` or ``module:attribute`` (a class is instantiated).
    plugins: list[str] = msgspec.field(default_factory=list)
    #: Load third-party plugins from the ``knm`` entry-point group.
    load_entrypoints: bool = True
    #: Run the task runner in this process.
    runner: bool = True
    #: Seconds a worker's lease on a task lasts before another may reap it.
    lease_seconds: float = 30.0
    #: Seconds running tasks get to finish at shutdown before they are cancelled.
    shutdown_grace: float = 10.0
    #: Finished tasks older than this many days are deleted (with their nodes and output).
    task_retention_days: int = 90
    #: Event logs of finished tasks older than this many days are deleted.
    event_retention_days: int = 30
    #: Stored output beyond this total (MiB) is dropped, oldest finished tasks first.
    output_retention_mb: int = 10_240
    #: Seconds between prunes.
    prune_interval: float = 3600.0
    #: Bytes of output kept per node and stream; the rest is dropped and marked truncated.
    output_cap: int = 1024 * 1024
    #: Serve /metrics without a token.
    metrics_public: bool = False
    db_pool_min: int = 2
    db_pool_max: int = 20
    log_level: str = "INFO"
    #: permessage-deflate on the progress WebSocket: off by default, since the server compresses
    #: every message once per connection and fan-out to many subscribers halves.
    ws_compression: bool = False
    #: How long a feature-switch change may take to reach other processes (seconds).
    settings_refresh: float = 2.0
    #: Seconds a token's authentication is remembered in a process, so repeated requests skip
    #: the users query; changes to a user and token revocations reach every process at once
    #: through PostgreSQL NOTIFY, and this bounds the rest. 0 turns the cache off.
    auth_cache_seconds: float = 5.0
    #: Notifications (docs/notifications.md): seconds a receiver gets per attempt; seconds a
    #: process's claim on a delivery lasts (past it another process sends it again); seconds
    #: between looks at the outbox besides NOTIFY; backoff after the first failure, doubling
    #: up to the cap; attempts before a delivery is dead; sends in flight per process; days
    #: finished deliveries are kept.
    notify_timeout: float = 10.0
    notify_lease: float = 60.0
    notify_poll: float = 2.0
    notify_backoff_base: float = 5.0
    notify_backoff_cap: float = 600.0
    notify_max_attempts: int = 10
    notify_concurrency: int = 32
    notify_retention_days: int = 30

    def resolved_data_dir(self) -> Path:
        return Path(self.data_dir) if self.data_dir else default_data_dir()

    @property
    def api_prefix(self) -> str:
        return f"{self.path_prefix.rstrip('/')}/api/v1"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> KnmConfig:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        toml_path = env.get("KNM_CONFIG")
        if toml_path:
            values.update(msgspec.toml.decode(Path(toml_path).read_bytes()))
        for name, field_type in _field_types().items():
            raw = env.get(f"KNM_{name.upper()}")
            if raw is not None:
                values[name] = _parse(raw, field_type)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return msgspec.convert(values, cls, strict=False)


def _field_types() -> dict[str, Any]:
    return {f.name: f.type for f in msgspec.structs.fields(KnmConfig)}


def _parse(raw: str, field_type: Any) -> Any:
    if field_type == "bool" or field_type is bool:
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if field_type in ("list[str]",) or str(field_type).startswith("list"):
        return [part.strip() for part in raw.split(",") if part.strip()]
    return raw
