"""Who the client is: the TCP peer, unless that peer is a configured reverse proxy
(``KNM_FORWARDED_ALLOW_IPS``), in which case the nearest address in ``X-Forwarded-For`` that is
not itself a trusted proxy. The login throttle and the audit log both ask here, and ``knm serve``
gives uvicorn the same list, so a forged header from anyone else changes nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    def __init__(self, entries: Iterable[str]) -> None:
        self.everyone = False
        self.literals: set[str] = set()
        self.networks: list[Network] = []
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            if entry == "*":
                self.everyone = True
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.literals.add(entry)  # a unix socket path or a name, compared as is

    def __bool__(self) -> bool:
        return self.everyone or bool(self.networks or self.literals)

    def __contains__(self, host: str) -> bool:
        if self.everyone:
            return True
        if host in self.literals:
            return True
        try:
            address: Address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)


def client_address(scope: Any, trusted: TrustedProxies) -> str:
    """The client's address for the throttle and the audit log."""
    client = scope.get("client")
    peer = str(client[0]) if client else "unknown"
    if not trusted or peer not in trusted:
        return peer
    forwarded = [
        value.decode("latin-1")
        for name, value in scope.get("headers") or ()
        if name.lower() == b"x-forwarded-for"
    ]
    hops = [_host(hop) for hop in ",".join(forwarded).split(",") if hop.strip()]
    if not hops:
        return peer
    # The rightmost hop was added by the proxy we trust; walk left past every trusted proxy.
    for hop in reversed(hops):
        if hop not in trusted:
            return hop
    return hops[0]


def _host(hop: str) -> str:
    """The address of one hop, without a port (``1.2.3.4:80``, ``[2001:db8::1]:80``)."""
    hop = hop.strip()
    if hop.startswith("["):
        return hop[1:].partition("]")[0]
    if hop.count(":") == 1:
        return hop.partition(":")[0]
    return hop


def uvicorn_options(entries: list[str]) -> dict[str, Any]:
    """uvicorn's proxy settings for the same list: with none configured, uvicorn believes no
    forwarded header (its own default trusts 127.0.0.1, or ``$FORWARDED_ALLOW_IPS``)."""
    if not entries:
        return {"proxy_headers": False, "forwarded_allow_ips": ""}
    return {"proxy_headers": True, "forwarded_allow_ips": ",".join(entries)}
