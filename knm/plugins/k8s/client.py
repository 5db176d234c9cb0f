"""Talking to a cluster's API server: kubeconfig checks, API clients, and the calls knm makes.

The official ``kubernetes`` client is synchronous. Its calls run in one bounded
``ThreadPoolExecutor`` per knm (``loop.run_in_executor``), never on the event loop. Why not an
asyncio client: the official package has no asyncio API (``kubernetes_asyncio`` is a separate,
separately generated fork, not among the project's chosen dependencies), and the official
client's kubeconfig loader — TLS data, tokens, exec and auth-provider plugins — is the part worth
reusing. Calls are short (each has a request timeout), so a small pool serves many tasks; the
waiting (evictions blocked by budgets, nodes rebooting) happens in asyncio, between calls.

Responses are read raw (``_preload_content=False``) and decoded with msgspec into the structs
of :mod:`knm.plugins.k8s.objects`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
import urllib3
import yaml
from kubernetes import client as kclient
from kubernetes import config as kconfig
from kubernetes.client.exceptions import ApiException

from knm.core.clusters import Cluster
from knm.plugins.k8s import objects
from knm.plugins.k8s.schemas import KubernetesConfig

if TYPE_CHECKING:
    from knm.core.state import Knm

T = TypeVar("T")

#: (connect, read) seconds for every API call.
REQUEST_TIMEOUT = (5.0, 30.0)
#: Threads running API calls at once in one process.
THREADS = 16
#: How long a cluster's node list is reused.
NODE_CACHE_SECONDS = 3.0
#: Kubeconfig keys that name files on the knm server; a kubeconfig must carry the data instead.
_FILE_KEYS = {
    "clusters": ("certificate-authority",),
    "users": ("client-certificate", "client-key", "tokenFile"),
}
_COMMAND_KEYS = ("exec", "auth-provider")
MERGE_PATCH = "application/merge-patch+json"


class KubeError(Exception):
    """A failed API call: ``reason`` is the node result's reason."""

    def __init__(self, reason: str, message: str, status: int = 0, body: Any = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status
        self.body: objects.Status = body if body is not None else objects.Status()


# --- kubeconfig ---------------------------------------------------------------------------------


def parse_kubeconfig(text: str) -> dict[str, Any]:
    """The kubeconfig as a mapping; ``ValueError`` with a reason (never its content)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ValueError(f"kubeconfig is not valid YAML{where}") from None
    if isinstance(doc, str) and "\n" not in text.strip():
        # A path where the file's text belongs: the path means nothing on this server.
        raise ValueError(
            "kubeconfig must be a YAML mapping (the kubeconfig file's text, not its path; "
            "the knm command reads the file: knm cluster create NAME --kubeconfig FILE)"
        )
    if not isinstance(doc, dict):
        raise ValueError("kubeconfig must be a YAML mapping")
    return doc


def _entries(doc: dict[str, Any], section: str, inner: str) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for entry in doc.get(section) or []:
        if isinstance(entry, dict) and isinstance(entry.get(inner), dict):
            found.append((str(entry.get("name", "")), entry[inner]))
    return found


def kubeconfig_problems(text: str, context: str | None) -> list[str]:
    """What is wrong with a kubeconfig's shape (never quoting its secrets)."""
    try:
        doc = parse_kubeconfig(text)
    except ValueError as exc:
        return [str(exc)]
    problems = []
    contexts = [name for name, _ in _entries(doc, "contexts", "context")]
    chosen = context or doc.get("current-context")
    if not chosen:
        problems.append("kubeconfig has no current-context; give context")
    elif chosen not in contexts:
        problems.append(f"kubeconfig has no context {chosen!r}")
    for section, keys in _FILE_KEYS.items():
        inner = section[:-1]
        for name, entry in _entries(doc, section, inner):
            for key in keys:
                if key in entry:
                    problems.append(
                        f"kubeconfig {inner} {name!r} reads the file {key}; "
                        "embed the data instead (the -data fields, or token)"
                    )
    return problems


def runs_commands(text: str) -> list[str]:
    """Names of the kubeconfig's users that run a command on the knm server to authenticate."""
    try:
        doc = parse_kubeconfig(text)
    except ValueError:
        return []
    return [
        name
        for name, user in _entries(doc, "users", "user")
        if any(key in user for key in _COMMAND_KEYS)
    ]


def _server_of(config: KubernetesConfig) -> str:
    if config.in_cluster or not config.kubeconfig:
        return "the in-cluster API server"
    with contextlib.suppress(ValueError):
        doc = parse_kubeconfig(config.kubeconfig)
        contexts = dict(_entries(doc, "contexts", "context"))
        chosen = contexts.get(config.context or doc.get("current-context") or "", {})
        clusters = dict(_entries(doc, "clusters", "cluster"))
        server = clusters.get(chosen.get("cluster", ""), {}).get("server")
        if server:
            return str(server)
    return "the API server"


def build_api_client(config: KubernetesConfig) -> kclient.ApiClient:
    """An API client for the config (blocking: reads the kubeconfig, may run its exec plugin)."""
    if config.in_cluster:
        configuration = kclient.Configuration()
        kconfig.incluster_config.InClusterConfigLoader(
            token_filename=kconfig.incluster_config.SERVICE_TOKEN_FILENAME,
            cert_filename=kconfig.incluster_config.SERVICE_CERT_FILENAME,
        ).load_and_set(configuration)
        return kclient.ApiClient(configuration)
    assert config.kubeconfig is not None
    doc = parse_kubeconfig(config.kubeconfig)
    return kconfig.new_client_from_config_dict(doc, context=config.context, persist_config=False)


def config_key(cluster: Cluster) -> str:
    config: KubernetesConfig = cluster.config
    digest = hashlib.sha256(msgspec.json.encode(config)).hexdigest()
    return f"{cluster.id}:{digest}"


# --- errors -------------------------------------------------------------------------------------


def _error(exc: BaseException, server: str) -> KubeError:
    if isinstance(exc, ApiException) and exc.status:
        body = objects.Status()
        with contextlib.suppress(msgspec.DecodeError, TypeError, ValueError):
            body = msgspec.json.decode(exc.body or b"{}", type=objects.Status)
        message = body.message or exc.reason or f"HTTP {exc.status}"
        reason = {404: "not_found", 409: "conflict", 429: "too_many_requests"}.get(
            exc.status, "api_error"
        )
        if exc.status in (401, 403):
            reason = "api_forbidden"
        return KubeError(reason, f"{message} (HTTP {exc.status})", exc.status, body)
    if isinstance(exc, ApiException):
        return KubeError("api_unreachable", f"{server} is unreachable: {exc.reason}")
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        cause = exc
        if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
            cause = exc.reason
        return KubeError(
            "api_unreachable", f"{server} is unreachable: {type(cause).__name__}: {cause}"
        )
    return KubeError("api_error", f"{type(exc).__name__}: {exc}")


# --- one cluster --------------------------------------------------------------------------------


class Kube:
    """One cluster's API, async: each call runs on the hub's threads."""

    def __init__(self, api: kclient.ApiClient, pool: ThreadPoolExecutor, server: str) -> None:
        self.api = api
        self.core = kclient.CoreV1Api(api)
        self.policy = kclient.PolicyV1Api(api)
        self.version_api = kclient.VersionApi(api)
        self.pool = pool
        self.server = server

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> bytes:
        kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
        kwargs["_preload_content"] = False
        loop = asyncio.get_running_loop()
        try:
            response = await loop.run_in_executor(self.pool, functools.partial(fn, *args, **kwargs))
            return bytes(response.data)
        except Exception as exc:
            raise _error(exc, self.server) from None

    async def version(self) -> str:
        data = await self._call(self.version_api.get_code)
        return str(msgspec.json.decode(data).get("gitVersion", ""))

    async def list_nodes(self) -> list[objects.NodeDoc]:
        data = await self._call(self.core.list_node)
        return msgspec.json.decode(data, type=objects.NodeList).items

    async def node(self, name: str) -> objects.NodeDoc:
        return msgspec.json.decode(
            await self._call(self.core.read_node, name), type=objects.NodeDoc
        )

    async def patch_node(self, name: str, patch: dict[str, Any]) -> objects.NodeDoc:
        data = await self._call(self.core.patch_node, name, patch, _content_type=MERGE_PATCH)
        return msgspec.json.decode(data, type=objects.NodeDoc)

    async def pods_on(self, node: str) -> list[objects.PodDoc]:
        data = await self._call(
            self.core.list_pod_for_all_namespaces, field_selector=f"spec.nodeName={node}"
        )
        return msgspec.json.decode(data, type=objects.PodList).items

    async def pdbs(self) -> list[objects.PdbDoc]:
        data = await self._call(self.policy.list_pod_disruption_budget_for_all_namespaces)
        return msgspec.json.decode(data, type=objects.PdbList).items

    async def evict(self, pod: objects.PodDoc, grace_period: int | None) -> None:
        meta = pod.metadata
        options: dict[str, Any] = {"preconditions": {"uid": meta.uid}}
        if grace_period is not None:
            options["gracePeriodSeconds"] = grace_period
        body = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": meta.name, "namespace": meta.namespace},
            "deleteOptions": options,
        }
        await self._call(self.core.create_namespaced_pod_eviction, meta.name, meta.namespace, body)

    async def delete_pod(self, pod: objects.PodDoc, grace_period: int | None) -> None:
        meta = pod.metadata
        body: dict[str, Any] = {"preconditions": {"uid": meta.uid}}
        if grace_period is not None:
            body["gracePeriodSeconds"] = grace_period
        await self._call(self.core.delete_namespaced_pod, meta.name, meta.namespace, body=body)


# --- the hub: clients and caches of one knm -----------------------------------------------------


class Hub:
    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(THREADS, thread_name_prefix="knm-k8s")
        self._clients: dict[str, Kube] = {}
        self._nodes: dict[str, tuple[float, list[objects.NodeDoc]]] = {}
        self._building: dict[str, asyncio.Lock] = {}

    async def kube(self, cluster: Cluster) -> Kube:
        """The cluster's API (built once per cluster config; a changed config builds anew)."""
        key = config_key(cluster)
        found = self._clients.get(key)
        if found is not None:
            return found
        lock = self._building.setdefault(key, asyncio.Lock())
        async with lock:
            found = self._clients.get(key)
            if found is None:
                found = await self.build(cluster.config)
                for old in [k for k in self._clients if k.split(":")[0] == str(cluster.id)]:
                    self._close(self._clients.pop(old))
                self._clients[key] = found
        return found

    async def build(self, config: KubernetesConfig) -> Kube:
        server = _server_of(config)
        loop = asyncio.get_running_loop()
        try:
            api = await loop.run_in_executor(self.pool, build_api_client, config)
        except Exception as exc:
            # Never the exception's text: a loader error may quote the kubeconfig.
            raise KubeError(
                "api_error", f"cannot build a client for {server}: {type(exc).__name__}"
            ) from None
        return Kube(api, self.pool, server)

    async def nodes(self, cluster: Cluster) -> list[objects.NodeDoc]:
        """The cluster's nodes, reused for ``NODE_CACHE_SECONDS``."""
        key = config_key(cluster)
        cached = self._nodes.get(key)
        if cached is not None and time.monotonic() - cached[0] < NODE_CACHE_SECONDS:
            return cached[1]
        nodes = await (await self.kube(cluster)).list_nodes()
        self._nodes[key] = (time.monotonic(), nodes)
        return nodes

    def forget_nodes(self, cluster: Cluster) -> None:
        self._nodes.pop(config_key(cluster), None)

    def _close(self, kube: Kube) -> None:
        with contextlib.suppress(Exception):
            kube.api.close()

    def close(self) -> None:
        for kube in self._clients.values():
            self._close(kube)
        self._clients.clear()
        self._nodes.clear()
        self.pool.shutdown(wait=False, cancel_futures=True)


def hub_of(knm: Knm) -> Hub:
    """This app's hub, kept in its registry's state slot."""
    return knm.registry.state_for(Hub, Hub)


@contextlib.asynccontextmanager
async def lifespan(knm: Knm) -> AsyncIterator[None]:
    try:
        yield
    finally:
        hub: Hub | None = knm.registry.drop_state(Hub)
        if hub is not None:
            hub.close()
