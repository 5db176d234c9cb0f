"""SSH plugin settings and request/response structs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from knm.core.features import ExecutorSettings
from knm.core.patterns import pattern_problem
from knm.core.policy import BUILTIN_RULES, AllowPattern, DenyRule
from knm.core.tasks import ExecRequest

__all__ = [
    "AllowPattern",
    "CertAuthority",
    "DenyRule",
    "HostKeyList",
    "HostKeyPin",
    "SshRequest",
    "SshSettings",
]

HostKeyPolicy = Literal["tofu", "strict", "off"]
SshClient = Literal["asyncssh", "libssh2"]


class CertAuthority(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A host CA trusted under the ``strict`` policy, like known_hosts' ``@cert-authority``.

    ``clusters`` names the clusters it vouches for; ``["*"]`` is every cluster."""

    public_key: str
    clusters: list[str] = msgspec.field(default_factory=lambda: ["*"])

    def covers(self, cluster: str) -> bool:
        return "*" in self.clusters or cluster in self.clusters


class SshSettings(ExecutorSettings, kw_only=True, forbid_unknown_fields=True):
    """``max_concurrent``: simultaneous SSH sessions in one process, across every task and kind
    that uses the SSH transport. ``connection_pool_size``: idle connections kept for reuse, each
    for at most ``pool_idle_ttl`` seconds. ``connect_timeout``: seconds to connect and log in.

    ``host_key_policy``: ``tofu`` pins the first key a node shows and refuses another one later,
    ``strict`` accepts only pinned keys or certificates of a ``cert_authorities`` key, ``off``
    accepts anything. ``deny_rules`` are the site's own command guard-rail rules (an RE2
    pattern searched in each command that would run); ``allow_rules`` names rules (the built-in
    classes or the site's) that are not applied; a command matching one of ``allow_patterns``
    is not judged by the built-in classes.

    ``client``: the SSH client library. ``asyncssh`` (the default) offers the post-quantum
    hybrid key exchange (mlkem768x25519-sha256) first; ``libssh2`` costs about a third of its
    CPU per connection but has no post-quantum key exchange (curve25519-sha256 at best) and
    holds ~65 KB more memory per connection, so it is opt-in, for speed at large fan-outs. Connections through a bastion, and under ``strict``
    with a cert authority for the cluster, are opened with asyncssh either way."""

    timeout: int = 300
    max_concurrent: int = 50
    connection_pool_size: int = 20
    pool_idle_ttl: int = 60
    connect_timeout: int = 10
    host_key_policy: HostKeyPolicy = "tofu"
    client: SshClient = "asyncssh"
    cert_authorities: list[CertAuthority] = msgspec.field(default_factory=list)
    deny_rules: list[DenyRule] = msgspec.field(default_factory=list)
    allow_rules: list[str] = msgspec.field(default_factory=list)
    allow_patterns: list[AllowPattern] = msgspec.field(default_factory=list)

    def problems(self) -> list[str]:
        found = super().problems()
        if not 0 <= self.connection_pool_size <= 10_000:
            found.append("connection_pool_size must be between 0 and 10000")
        if not 1 <= self.pool_idle_ttl <= 86_400:
            found.append("pool_idle_ttl must be between 1 and 86400 seconds")
        if not 1 <= self.connect_timeout <= 600:
            found.append("connect_timeout must be between 1 and 600 seconds")
        names: set[str] = set()
        for i, rule in enumerate(self.deny_rules):
            if not rule.name.strip():
                found.append(f"deny_rules[{i}]: name must not be blank")
            if rule.name in names or rule.name in BUILTIN_RULES:
                found.append(f"deny_rules[{i}]: name {rule.name!r} is already taken")
            names.add(rule.name)
            problem = pattern_problem(rule.pattern)
            if problem:
                found.append(
                    f"deny_rules[{i}]: pattern is not a valid regular expression (RE2): {problem}"
                )
        for i, allow in enumerate(self.allow_patterns):
            if not allow.name.strip():
                found.append(f"allow_patterns[{i}]: name must not be blank")
            problem = pattern_problem(allow.pattern)
            if problem:
                found.append(
                    f"allow_patterns[{i}]: pattern is not a valid regular expression (RE2): {problem}"
                )
        known = names | set(BUILTIN_RULES)
        for name in self.allow_rules:
            if name not in known:
                found.append(f"allow_rules: unknown rule {name!r}")
        for i, authority in enumerate(self.cert_authorities):
            try:
                import asyncssh

                asyncssh.import_public_key(authority.public_key)
            except (asyncssh.KeyImportError, ValueError):
                found.append(f"cert_authorities[{i}]: public_key is not an SSH public key")
        return found


# The guard-rail refuses a command over 64 KiB (422) before parsing it; the decoder's bound
# only keeps absurd bodies out.
Command = Annotated[str, msgspec.Meta(max_length=1024 * 1024)]


class SshRequest(ExecRequest, kw_only=True, forbid_unknown_fields=True):
    """``POST /automation/ssh/execute``: one shell command run on every target node."""

    command: Command
    #: Run the command as root through ``sudo`` (the credential's password is fed on stdin).
    sudo: bool = False

    def problems(self) -> list[str]:
        found = super().problems()
        if not self.command.strip():
            found.append("command must not be blank")
        if "\x00" in self.command:
            found.append("command must not contain NUL characters")
        return found


class HostKeyPin(msgspec.Struct, kw_only=True):
    """The host key pinned for a node of a cluster (``@bastion`` for the cluster's jump host)."""

    cluster_name: str
    node: str
    key_type: str
    fingerprint: str
    public_key: str
    address: str
    port: int
    created_at: datetime


class HostKeyList(msgspec.Struct):
    total: int
    host_keys: list[HostKeyPin]
