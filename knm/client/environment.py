"""What the environment says about reaching a server, read as httpx reads it: proxies from
``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY`` and ``NO_PROXY`` (lower case first), and the TLS
trust from ``verify``, ``SSL_CERT_FILE``/``SSL_CERT_DIR`` or certifi's bundle."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ssl


def environment_proxies(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``{"http": url, "https": url, "all": url, "no": hosts}`` from ``*_proxy`` variables, a
    lower-case name over its upper-case twin, as ``urllib.request.getproxies`` reads them
    (which httpx uses); ``HTTP_PROXY`` is ignored under CGI (``REQUEST_METHOD`` set)."""
    environ = os.environ if environ is None else environ
    found: dict[str, str] = {}
    for name, value in environ.items():
        if value and name.lower().endswith("_proxy") and name != name.lower():
            found[name[:-6].lower()] = value
    for name, value in environ.items():
        if name.endswith("_proxy") and name == name.lower():
            if value:
                found[name[:-6]] = value
            else:
                found.pop(name[:-6], None)
    if "REQUEST_METHOD" in environ and environ.get("http_proxy") is None:
        found.pop("http", None)
    return found


def bypasses(host: str, port: int, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` keeps ``host`` off the proxy: ``*``; a name, which also covers its
    subdomains (``.name`` only them); an address, or a network (``10.0.0.0/8``); ``:port``
    narrows an entry to that port."""
    host = host.strip("[]").lower()
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        entry = entry.split("://", 1)[-1]
        name, entry_port = entry, None
        if entry.count(":") == 1 or (entry.startswith("[") and "]:" in entry):
            name, _, entry_port = entry.rpartition(":")
        name = name.strip("[]")
        if entry_port and entry_port != str(port):
            continue
        if "/" in name or name.replace(".", "").isdigit() or ":" in name:
            if _in_network(host, name):
                return True
        elif name.startswith("."):
            if host.endswith(name):
                return True
        elif host == name or host.endswith("." + name):
            return True
    return False


def _in_network(host: str, network: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network(network, strict=False)
    except ValueError:
        return False


def proxy_for(
    scheme: str, host: str, port: int, environ: Mapping[str, str] | None = None
) -> str | None:
    proxies = environment_proxies(environ)
    proxy = proxies.get(scheme) or proxies.get("all")
    if not proxy or bypasses(host, port, proxies.get("no", "")):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def ssl_context(verify: Any) -> ssl.SSLContext:
    """The TLS context for ``verify`` as httpx builds it: True checks against ``SSL_CERT_FILE``,
    ``SSL_CERT_DIR`` or certifi's bundle (the system's store without certifi); False checks
    nothing; a string is a CA bundle file or directory; a context is used as given."""
    import ssl

    if isinstance(verify, ssl.SSLContext):
        return verify
    if verify is False:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if isinstance(verify, str | os.PathLike):
        if os.path.isdir(verify):
            return ssl.create_default_context(capath=verify)
        return ssl.create_default_context(cafile=verify)
    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    try:
        import certifi
    except ImportError:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())
