"""HTTP semantics of the stand-in, independent of the socket server.

``KubeApi.handle`` maps one request to one response; routing, query parsing,
content negotiation for PATCH and list wrapping live here, state lives in
:class:`~knm.testing.k8s.cluster.Cluster`.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from knm.testing.k8s import errors
from knm.testing.k8s.cluster import Cluster
from knm.testing.k8s.patch import PatchError, json_patch, merge_patch, strategic_merge_patch
from knm.testing.k8s.selectors import (
    LabelSelector,
    SelectorError,
    field_matcher,
    parse_field_selector,
    parse_label_selector,
)

VERSION_INFO: dict[str, str] = {
    "major": "1",
    "minor": "30",
    "gitVersion": "v1.30.2",
    "gitCommit": "39683505b630ff2121012f3c5b16215a1449d5ed",
    "gitTreeState": "clean",
    "buildDate": "2024-06-11T20:21:00Z",
    "goVersion": "go1.22.4",
    "compiler": "gc",
    "platform": "linux/amd64",
}

# Endpoints the real server lets anonymous users read (system:public-info-viewer).
_PUBLIC = frozenset({"/version", "/healthz", "/livez", "/readyz"})


@dataclass
class Request:
    method: str
    path: str
    query: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)


@dataclass
class Response:
    status: int
    body: Any
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body, separators=(",", ":")).encode()


Handler = Callable[[Request, dict[str, str], dict[str, str]], Response]


def _resource(
    name: str, singular: str, kind: str, namespaced: bool, verbs: list[str], **extra: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "singularName": singular,
        "namespaced": namespaced,
        "kind": kind,
        "verbs": verbs,
        **extra,
    }


_READ = ["get", "list", "watch"]
_V1_RESOURCES = [
    _resource("namespaces", "namespace", "Namespace", False, _READ, shortNames=["ns"]),
    _resource("nodes", "node", "Node", False, [*_READ, "patch", "update"], shortNames=["no"]),
    _resource("nodes/status", "", "Node", False, ["get", "patch", "update"]),
    _resource(
        "pods", "pod", "Pod", True, ["delete", *_READ], shortNames=["po"], categories=["all"]
    ),
    _resource("pods/eviction", "", "Eviction", True, ["create"], group="policy", version="v1"),
]
_GROUPS: dict[str, list[dict[str, Any]]] = {
    "apps": [
        _resource("daemonsets", "daemonset", "DaemonSet", True, _READ, shortNames=["ds"]),
        _resource("replicasets", "replicaset", "ReplicaSet", True, _READ, shortNames=["rs"]),
    ],
    "policy": [
        _resource(
            "poddisruptionbudgets",
            "poddisruptionbudget",
            "PodDisruptionBudget",
            True,
            _READ,
            shortNames=["pdb"],
        ),
    ],
}

_NODE_FIELDS: dict[str, Callable[[Any], str]] = {
    "metadata.name": lambda d: d["metadata"]["name"],
    "spec.unschedulable": lambda d: "true" if d["spec"].get("unschedulable") else "false",
}
_POD_FIELDS: dict[str, Callable[[Any], str]] = {
    "metadata.name": lambda d: d["metadata"]["name"],
    "metadata.namespace": lambda d: d["metadata"]["namespace"],
    "spec.nodeName": lambda d: d["spec"].get("nodeName", ""),
    "spec.restartPolicy": lambda d: d["spec"]["restartPolicy"],
    "spec.schedulerName": lambda d: d["spec"]["schedulerName"],
    "spec.serviceAccountName": lambda d: d["spec"]["serviceAccountName"],
    "status.phase": lambda d: d["status"].get("phase", ""),
    "status.podIP": lambda d: d["status"].get("podIP", ""),
    "status.nominatedNodeName": lambda d: "",
}


class KubeApi:
    def __init__(self, cluster: Cluster, token: str | None = None) -> None:
        self.cluster = cluster
        self.token = token
        ns = r"(?P<ns>[^/]+)"
        name = r"(?P<name>[^/]+)"
        routes: list[tuple[str, dict[str, Handler]]] = [
            (r"/version", {"GET": lambda r, p, q: Response(200, VERSION_INFO)}),
            (
                r"/(?:healthz|livez|readyz)",
                {"GET": lambda r, p, q: Response(200, "ok", "text/plain")},
            ),
            (r"/api", {"GET": self._api_versions}),
            (
                r"/api/v1",
                {"GET": lambda r, p, q: Response(200, _resource_list("v1", _V1_RESOURCES))},
            ),
            (r"/apis", {"GET": lambda r, p, q: Response(200, _group_list())}),
            (
                r"/apis/(?P<group>apps|policy)",
                {"GET": lambda r, p, q: Response(200, _group(p["group"]))},
            ),
            (
                r"/apis/(?P<group>apps|policy)/v1",
                {
                    "GET": lambda r, p, q: Response(
                        200, _resource_list(f"{p['group']}/v1", _GROUPS[p["group"]])
                    )
                },
            ),
            (r"/api/v1/namespaces", {"GET": self._list_namespaces}),
            (rf"/api/v1/namespaces/{name}", {"GET": self._get_namespace}),
            (r"/api/v1/nodes", {"GET": self._list_nodes}),
            (
                rf"/api/v1/nodes/{name}",
                {"GET": self._get_node, "PATCH": self._patch_node, "PUT": self._put_node},
            ),
            (r"/api/v1/pods", {"GET": self._list_pods}),
            (rf"/api/v1/namespaces/{ns}/pods", {"GET": self._list_pods}),
            (
                rf"/api/v1/namespaces/{ns}/pods/{name}",
                {"GET": self._get_pod, "DELETE": self._delete_pod},
            ),
            (rf"/api/v1/namespaces/{ns}/pods/{name}/eviction", {"POST": self._evict}),
            (r"/apis/policy/v1/poddisruptionbudgets", {"GET": self._list_pdbs}),
            (rf"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets", {"GET": self._list_pdbs}),
            (
                rf"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets/{name}",
                {"GET": lambda r, p, q: Response(200, self.cluster.pdb_doc(p["ns"], p["name"]))},
            ),
            (r"/apis/apps/v1/(?P<res>replicasets|daemonsets)", {"GET": self._list_workloads}),
            (
                rf"/apis/apps/v1/namespaces/{ns}/(?P<res>replicasets|daemonsets)",
                {"GET": self._list_workloads},
            ),
            (
                rf"/apis/apps/v1/namespaces/{ns}/(?P<res>replicasets|daemonsets)/{name}",
                {"GET": self._get_workload},
            ),
            # Control plane for tests running in another process.
            (r"/_standin/requests", {"GET": self._standin_requests}),
            (r"/_standin/nodes", {"POST": self._standin_add("node")}),
            (r"/_standin/pods", {"POST": self._standin_add("pod")}),
            (r"/_standin/pdbs", {"POST": self._standin_add("pdb")}),
            (rf"/_standin/nodes/{name}/reboot", {"POST": self._standin_reboot}),
            (rf"/_standin/nodes/{name}/ready", {"POST": self._standin_ready}),
        ]
        self._routes = [(re.compile(pattern + r"/?"), methods) for pattern, methods in routes]

    # ------------------------------------------------------------------ entry

    def handle(self, request: Request) -> Response:
        try:
            response = self._dispatch(request)
        except errors.ApiError as exc:
            response = Response(exc.code, exc.status, headers=exc.headers)
        except SelectorError as exc:
            response = Response(400, errors.status_failure(400, "BadRequest", str(exc)))
        self.cluster.record_request(request.method, request.path, request.query, response.status)
        return response

    def _dispatch(self, request: Request) -> Response:
        if not request.path.startswith("/_standin/"):
            self._authenticate(request)
        for pattern, methods in self._routes:
            match = pattern.fullmatch(request.path)
            if match is None:
                continue
            handler = methods.get(request.method)
            if handler is None:
                raise errors.method_not_allowed()
            query = {k: v[-1] for k, v in parse_qs(request.query, keep_blank_values=True).items()}
            if query.get("watch") in ("true", "1"):
                raise errors.bad_request("watch is not supported by the knm Kubernetes stand-in")
            return handler(request, match.groupdict(), query)
        raise errors.path_not_found()

    def _authenticate(self, request: Request) -> None:
        if self.token is None:
            return
        header = request.header("Authorization")
        if header is None and request.path in _PUBLIC:
            return
        expected = f"Bearer {self.token}"
        if header is None or not hmac.compare_digest(header.encode(), expected.encode()):
            raise errors.unauthorized()

    # -------------------------------------------------------------- discovery

    def _api_versions(self, request: Request, _: dict[str, str], __: dict[str, str]) -> Response:
        host = request.header("Host") or "127.0.0.1"
        return Response(
            200,
            {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
            },
        )

    # ------------------------------------------------------------------ nodes

    def _list_nodes(self, _: Request, __: dict[str, str], q: dict[str, str]) -> Response:
        fields = field_matcher(parse_field_selector(q.get("fieldSelector")), _NODE_FIELDS)
        docs, rv = self.cluster.list_node_docs(parse_label_selector(q.get("labelSelector")), fields)
        return Response(200, _list("NodeList", "v1", docs, rv, q))

    def _get_node(self, _: Request, p: dict[str, str], __: dict[str, str]) -> Response:
        return Response(200, self.cluster.node_doc(p["name"]))

    def _patch_node(self, request: Request, p: dict[str, str], q: dict[str, str]) -> Response:
        body = _json_body(request)
        content_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
        apply: Callable[[Any, Any], Any]
        if content_type == "application/strategic-merge-patch+json":
            apply = strategic_merge_patch
        elif content_type == "application/merge-patch+json":
            apply = merge_patch
        elif content_type == "application/json-patch+json":
            apply = json_patch
        else:
            raise errors.unsupported_media_type(content_type)
        # Read-patch-write under one lock hold, so a concurrent writer cannot slip in.
        with self.cluster.lock:
            current = self.cluster.node_doc(p["name"])
            try:
                patched = apply(current, body)
            except PatchError as exc:
                raise errors.ApiError(errors.status_failure(422, "Invalid", str(exc))) from None
            # A patch that does not mention resourceVersion carries the current one.
            return Response(
                200,
                self.cluster.write_node(p["name"], patched, require_rv=False, dry_run=_dry_run(q)),
            )

    def _put_node(self, request: Request, p: dict[str, str], q: dict[str, str]) -> Response:
        body = _json_body(request)
        if not isinstance(body, dict) or body.get("kind", "Node") != "Node":
            raise errors.bad_request('Node in version "v1" cannot be handled as a Node')
        return Response(
            200, self.cluster.write_node(p["name"], body, require_rv=False, dry_run=_dry_run(q))
        )

    # ------------------------------------------------------------------- pods

    def _list_pods(self, _: Request, p: dict[str, str], q: dict[str, str]) -> Response:
        fields = field_matcher(parse_field_selector(q.get("fieldSelector")), _POD_FIELDS)
        docs, rv = self.cluster.list_pod_docs(
            p.get("ns"), parse_label_selector(q.get("labelSelector")), fields
        )
        return Response(200, _list("PodList", "v1", docs, rv, q))

    def _get_pod(self, _: Request, p: dict[str, str], __: dict[str, str]) -> Response:
        return Response(200, self.cluster.pod_doc(p["ns"], p["name"]))

    def _delete_pod(self, request: Request, p: dict[str, str], q: dict[str, str]) -> Response:
        options = _json_body(request, allow_empty=True) or {}
        if not isinstance(options, dict):
            raise errors.bad_request("DeleteOptions must be a JSON object")
        grace = _int_or_none(
            q.get("gracePeriodSeconds", options.get("gracePeriodSeconds")), "gracePeriodSeconds"
        )
        doc = self.cluster.delete_pod(
            p["ns"],
            p["name"],
            grace,
            preconditions=options.get("preconditions"),
            dry_run=_dry_run(q) or bool(options.get("dryRun")),
        )
        return Response(200, doc)

    def _evict(self, request: Request, p: dict[str, str], q: dict[str, str]) -> Response:
        body = _json_body(request)
        if not isinstance(body, dict):
            raise errors.bad_request('Eviction in version "v1" cannot be handled as an Eviction')
        meta = body.get("metadata") or {}
        if meta.get("name") not in (None, p["name"]):
            raise errors.bad_request("name in URL does not match name in Eviction object")
        options = body.get("deleteOptions") or {}
        self.cluster.evict(
            p["ns"],
            p["name"],
            _int_or_none(options.get("gracePeriodSeconds"), "deleteOptions.gracePeriodSeconds"),
            preconditions=options.get("preconditions"),
            dry_run=_dry_run(q) or bool(options.get("dryRun")),
        )
        return Response(201, errors.status_success(201))

    # ------------------------------------------------------- policy and apps

    def _list_pdbs(self, _: Request, p: dict[str, str], q: dict[str, str]) -> Response:
        parse_field_selector(q.get("fieldSelector"))
        docs, rv = self.cluster.list_pdb_docs(
            p.get("ns"), parse_label_selector(q.get("labelSelector"))
        )
        return Response(200, _list("PodDisruptionBudgetList", "policy/v1", docs, rv, q))

    def _list_workloads(self, _: Request, p: dict[str, str], q: dict[str, str]) -> Response:
        kind = "ReplicaSet" if p["res"] == "replicasets" else "DaemonSet"
        docs, rv = self.cluster.list_workload_docs(
            kind, p.get("ns"), parse_label_selector(q.get("labelSelector"))
        )
        return Response(200, _list(f"{kind}List", "apps/v1", docs, rv, q))

    def _get_workload(self, _: Request, p: dict[str, str], __: dict[str, str]) -> Response:
        kind = "ReplicaSet" if p["res"] == "replicasets" else "DaemonSet"
        return Response(200, self.cluster.workload_doc(kind, p["ns"], p["name"]))

    def _list_namespaces(self, _: Request, __: dict[str, str], q: dict[str, str]) -> Response:
        docs = [_namespace(n) for n in self.cluster.namespaces()]
        return Response(200, _list("NamespaceList", "v1", docs, self.cluster.resource_version, q))

    def _get_namespace(self, _: Request, p: dict[str, str], __: dict[str, str]) -> Response:
        if p["name"] not in self.cluster.namespaces():
            raise errors.not_found("namespaces", p["name"])
        return Response(200, _namespace(p["name"]))

    # ---------------------------------------------------------------- control

    def _standin_requests(self, _: Request, __: dict[str, str], ___: dict[str, str]) -> Response:
        records = [
            {"method": r.method, "path": r.path, "query": r.query, "status": r.status}
            for r in self.cluster.requests
        ]
        return Response(200, {"requests": records})

    def _standin_add(self, what: str) -> Handler:
        def add(request: Request, _: dict[str, str], __: dict[str, str]) -> Response:
            body = _json_body(request)
            if not isinstance(body, dict):
                raise errors.bad_request("expected a JSON object of keyword arguments")
            try:
                if what == "node":
                    self.cluster.add_node(**body)
                elif what == "pod":
                    self.cluster.add_pod(**body)
                else:
                    self.cluster.add_pdb(**body)
            except (TypeError, ValueError, KeyError) as exc:
                raise errors.bad_request(f"cannot add {what}: {exc}") from None
            return Response(201, errors.status_success(201))

        return add

    def _standin_reboot(self, request: Request, p: dict[str, str], _: dict[str, str]) -> Response:
        body = _json_body(request, allow_empty=True) or {}
        duration = body.get("duration") if isinstance(body, dict) else None
        try:
            # Asked through the API: by a command on the node (the way knm reboots it).
            self.cluster.reboot(p["name"], None if duration is None else float(duration), by="node")
        except KeyError:
            raise errors.not_found("nodes", p["name"]) from None
        return Response(200, errors.status_success(200))

    def _standin_ready(self, request: Request, p: dict[str, str], _: dict[str, str]) -> Response:
        body = _json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("ready"), bool):
            raise errors.bad_request('expected {"ready": true|false}')
        try:
            self.cluster.set_ready(p["name"], body["ready"])
        except KeyError:
            raise errors.not_found("nodes", p["name"]) from None
        return Response(200, errors.status_success(200))


def _json_body(request: Request, *, allow_empty: bool = False) -> Any:
    if not request.body.strip():
        if allow_empty:
            return None
        raise errors.bad_request("the request body is empty")
    try:
        return json.loads(request.body)
    except ValueError as exc:
        raise errors.bad_request(f"the request body is not valid JSON: {exc}") from None


def _int_or_none(value: Any, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise errors.bad_request(f"invalid {name}: {value!r}") from None


def _dry_run(q: dict[str, str]) -> bool:
    return q.get("dryRun") == "All"


def _list(
    kind: str, api_version: str, docs: list[dict[str, Any]], rv: str, q: dict[str, str]
) -> dict[str, Any]:
    # Items inside a list carry no kind/apiVersion on the wire.
    items = [{k: v for k, v in d.items() if k not in ("kind", "apiVersion")} for d in docs]
    meta: dict[str, Any] = {"resourceVersion": rv}
    start = 0
    if q.get("continue"):
        try:
            start = int(json.loads(base64.urlsafe_b64decode(q["continue"]))["start"])
        except (ValueError, KeyError, TypeError):
            raise errors.bad_request("continue key is not valid") from None
    limit = _int_or_none(q.get("limit"), "limit") or 0
    end = start + limit if limit > 0 else len(items)
    if end < len(items):
        meta["continue"] = base64.urlsafe_b64encode(json.dumps({"start": end}).encode()).decode()
        meta["remainingItemCount"] = len(items) - end
    return {"kind": kind, "apiVersion": api_version, "metadata": meta, "items": items[start:end]}


def _resource_list(group_version: str, resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }


def _group(name: str) -> dict[str, Any]:
    version = {"groupVersion": f"{name}/v1", "version": "v1"}
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": name,
        "versions": [version],
        "preferredVersion": version,
    }


def _group_list() -> dict[str, Any]:
    groups = []
    for name in _GROUPS:
        group = _group(name)
        del group["kind"], group["apiVersion"]
        groups.append(group)
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _namespace(name: str) -> dict[str, Any]:
    return {
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


__all__ = ["KubeApi", "LabelSelector", "Request", "Response"]
