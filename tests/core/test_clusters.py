"""Clusters over the API, and resolving a request's targets to nodes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from knm.core.clusters import ClusterProvider, Node
from knm.core.errors import BadRequest, Invalid, NotFound
from knm.core.hookspecs import hookimpl
from knm.core.targets import Resolution, TargetRequest, resolve_targets
from knm.testing.client import ApiClient, assert_envelope

WORKER = "node-role.kubernetes.io/worker"


def node(name: str, address: str = "10.0.0.5", **extra: Any) -> dict[str, Any]:
    return {"name": name, "address": address, **extra}


def static(name: str, nodes: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": name, "kind": "static", "nodes": nodes or [node("node1")], **extra}


async def create(
    client: ApiClient, headers: dict[str, str], body: dict[str, Any]
) -> dict[str, Any]:
    return assert_envelope(await client.post("/clusters", json=body, headers=headers), 201)["data"]


class SecretiveConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    endpoint: str
    token: str


class SecretiveProvider(ClusterProvider):
    """A provider with a secret, the way the kubernetes one has its kubeconfig."""

    kind = "secretive"
    config_type = SecretiveConfig
    secret_fields = ("token",)

    def validate(self, config: Any) -> list[str]:
        return [] if config.token else ["token must not be empty"]

    async def check(self, knm: Any, cluster: Any) -> None:
        if cluster.config.endpoint == "unreachable":
            raise Invalid(f"cannot reach {cluster.config.endpoint}")

    async def list_nodes(self, knm: Any, cluster: Any) -> list[Node]:
        token = cluster.config.token
        return [Node(name="only", address="10.3.0.1", info={"token_length": str(len(token))})]


class SecretivePlugin:
    @hookimpl
    def knm_cluster_providers(self) -> list[ClusterProvider]:
        return [SecretiveProvider()]


@pytest.fixture(scope="module")
def knm_extra_plugins() -> list[Any]:
    return [SecretivePlugin()]


@pytest.fixture(scope="module")
async def viewer(knm_client: ApiClient, admin_headers: dict[str, str]) -> dict[str, str]:
    return await knm_client.create_user(admin_headers, "vic", "viewer")


@pytest.fixture(scope="module")
async def operator(knm_client: ApiClient, admin_headers: dict[str, str]) -> dict[str, str]:
    return await knm_client.create_user(admin_headers, "olga", "operator")


@pytest.fixture(scope="module")
async def knm(knm_client: ApiClient, knm_app: Any) -> Any:
    return knm_app.state["knm"]


async def on_app_loop(client: ApiClient, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    """Run ``fn(*args)`` on the loop that owns the app's database pool (the test client's)."""
    portal = client.http.blocking_portal  # type: ignore[attr-defined]
    return await asyncio.to_thread(portal.call, fn, *args)


# --- CRUD --------------------------------------------------------------------------------------


async def test_an_admin_registers_a_static_cluster_and_every_role_reads_it(
    knm_client: ApiClient, admin_headers: dict[str, str], viewer: dict[str, str]
) -> None:
    body = {
        "name": "lab",
        "kind": "static",
        "description": "the lab rack",
        "nodes": [
            {"name": "node1", "address": "10.0.0.5", "port": 22, "labels": {WORKER: ""}},
            {"name": "node2", "address": "node2.lab.example"},
        ],
        "bastion": None,
    }
    response = await knm_client.post("/clusters", json=body, headers=admin_headers)
    made = assert_envelope(response, 201)
    assert made["message"] == "cluster created"
    cluster = made["data"]
    assert {k: cluster[k] for k in ("name", "kind", "description", "bastion")} == {
        "name": "lab", "kind": "static", "description": "the lab rack", "bastion": None,
    }  # fmt: skip
    assert cluster["nodes"] == [
        {"name": "node1", "address": "10.0.0.5", "port": 22, "labels": {WORKER: ""}},
        {"name": "node2", "address": "node2.lab.example", "port": None, "labels": {}},
    ]
    assert cluster["created_at"].endswith("Z") and isinstance(cluster["id"], int)
    one = assert_envelope(await knm_client.get("/clusters/lab", headers=viewer), 200)["data"]
    assert one == cluster
    listed = assert_envelope(await knm_client.get("/clusters", headers=viewer), 200)["data"]
    assert listed["total"] >= 1 and cluster in listed["clusters"]


async def test_only_admins_create_change_or_delete_clusters(
    knm_client: ApiClient,
    admin_headers: dict[str, str],
    viewer: dict[str, str],
    operator: dict[str, str],
) -> None:
    await create(knm_client, admin_headers, static("guarded"))
    for headers in (viewer, operator):
        assert_envelope(await knm_client.post("/clusters", json=static("x"), headers=headers), 403)
        assert_envelope(
            await knm_client.put("/clusters/guarded", json={"description": "x"}, headers=headers),
            403,
        )
        assert_envelope(await knm_client.delete("/clusters/guarded", headers=headers), 403)
        assert_envelope(await knm_client.get("/clusters/guarded/nodes", headers=headers), 200)
    assert_envelope(await knm_client.get("/clusters"), 401)


@pytest.mark.parametrize(
    "name", ["Lab", "-lab", "lab-", "", "a" * 64, "lab rack", "lab/1", "läb", "lab\n"]
)
async def test_a_cluster_name_must_be_dns_label_like(
    knm_client: ApiClient, admin_headers: dict[str, str], name: str
) -> None:
    body = assert_envelope(
        await knm_client.post("/clusters", json=static(name), headers=admin_headers), 422
    )
    assert "name" in body["error"]


@pytest.mark.parametrize("name", ["a", "0", "prod.eu-1", "lab_2", "a" * 63])
async def test_dns_label_like_names_are_accepted(
    knm_client: ApiClient, admin_headers: dict[str, str], name: str
) -> None:
    await create(knm_client, admin_headers, static(name))


async def test_an_unknown_kind_is_422_listing_the_known_kinds(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    response = await knm_client.post(
        "/clusters", json={"name": "k", "kind": "openstack"}, headers=admin_headers
    )
    assert (
        "unknown cluster kind 'openstack'; known kinds: kubernetes, secretive, static"
        in assert_envelope(response, 422)["error"]
    )


async def test_a_duplicate_name_is_409(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    await create(knm_client, admin_headers, static("twice"))
    response = await knm_client.post("/clusters", json=static("twice"), headers=admin_headers)
    assert "already exists" in assert_envelope(response, 409)["error"]


async def test_duplicate_node_names_are_422_naming_them(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    nodes = [node("n1"), node("n2"), node("n1"), node("n2"), node("n3")]
    response = await knm_client.post("/clusters", json=static("dups", nodes), headers=admin_headers)
    assert "duplicate node names: n1, n2" in assert_envelope(response, 422)["error"]


async def test_every_value_problem_is_reported_at_once(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    nodes = [
        node("ok"),
        node("Bad_Name"),
        node("n2", "10.0.0.300"),
        node("n3", port=70000),
        node("n4", labels={"Bad Key": "ok", "fine": "bad value"}),
    ]
    body = static("many-problems", nodes, bastion={"address": "not a host", "port": 0})
    error = assert_envelope(
        await knm_client.post("/clusters", json=body, headers=admin_headers), 422
    )["error"]
    for expected in (
        "nodes[1]: name 'Bad_Name'",
        "nodes[2]: address '10.0.0.300'",
        "nodes[3]: port must be between 1 and 65535",
        "nodes[4]: label key 'Bad Key'",
        "nodes[4]: label value 'bad value'",
        "bastion: address 'not a host'",
        "bastion: port must be between 1 and 65535",
    ):
        assert expected in error


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"kind": "static"}, "missing required field `name`"),
        ({"name": "x"}, "missing required field `kind`"),
        ({"name": 1, "kind": "static"}, "name: Expected `str`, got `int`"),
        (static("x", [node("n1", port="22")]), "nodes[0].port: Expected `int | null`, got `str`"),
        (static("x", extra=1), "unknown field `extra`"),
        (static("x", [{**node("n1"), "role": "x"}]), "unknown field `role`"),
        (static("x", bastion={"port": 22}), "bastion: Object missing required field `address`"),
        ([1, 2], "Expected `object`, got `array`"),
    ],
)
async def test_a_body_of_the_wrong_shape_is_400_naming_the_field(
    knm_client: ApiClient, admin_headers: dict[str, str], body: Any, detail: str
) -> None:
    response = await knm_client.post("/clusters", json=body, headers=admin_headers)
    assert detail in assert_envelope(response, 400)["error"]


async def test_a_body_that_is_not_json_is_400(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    for content in (b"{nope", b""):
        response = await knm_client.post("/clusters", content=content, headers=admin_headers)
        assert_envelope(response, 400)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/clusters/production"),
        ("PUT", "/clusters/production"),
        ("DELETE", "/clusters/production"),
        ("GET", "/clusters/production/nodes"),
    ],
)
async def test_an_unknown_cluster_is_404(
    knm_client: ApiClient, admin_headers: dict[str, str], method: str, path: str
) -> None:
    response = await knm_client.request(method, path, json={}, headers=admin_headers)
    assert assert_envelope(response, 404)["error"] == "Cluster production not found"


async def test_put_changes_only_the_given_fields_and_replaces_nodes_whole(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    before = await create(
        knm_client, admin_headers, static("edit", [node("a"), node("b")], description="old")
    )
    response = await knm_client.put(
        "/clusters/edit", json={"description": "new"}, headers=admin_headers
    )
    after = assert_envelope(response, 200)["data"]
    assert after["description"] == "new" and after["nodes"] == before["nodes"]
    response = await knm_client.put(
        "/clusters/edit", json={"nodes": [node("c", "10.1.1.1")]}, headers=admin_headers
    )
    after = assert_envelope(response, 200)["data"]
    assert [n["name"] for n in after["nodes"]] == ["c"] and after["description"] == "new"
    bad = await knm_client.put(
        "/clusters/edit", json={"nodes": [node("c"), node("c")]}, headers=admin_headers
    )
    assert "duplicate node names: c" in assert_envelope(bad, 422)["error"]


async def test_put_renames_but_never_changes_the_kind(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    await create(knm_client, admin_headers, static("old-name"))
    await create(knm_client, admin_headers, static("taken"))
    kind = await knm_client.put(
        "/clusters/old-name", json={"kind": "kubernetes"}, headers=admin_headers
    )
    assert "kind cannot change" in assert_envelope(kind, 422)["error"]
    same_kind = await knm_client.put(
        "/clusters/old-name", json={"kind": "static"}, headers=admin_headers
    )
    assert_envelope(same_kind, 200)
    taken = await knm_client.put(
        "/clusters/old-name", json={"name": "taken"}, headers=admin_headers
    )
    assert_envelope(taken, 409)
    bad = await knm_client.put("/clusters/old-name", json={"name": "Bad"}, headers=admin_headers)
    assert_envelope(bad, 422)
    renamed = await knm_client.put(
        "/clusters/old-name", json={"name": "new-name"}, headers=admin_headers
    )
    assert assert_envelope(renamed, 200)["data"]["name"] == "new-name"
    assert_envelope(await knm_client.get("/clusters/old-name", headers=admin_headers), 404)


async def test_delete_removes_the_cluster_and_every_change_is_audited(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    await create(knm_client, admin_headers, static("doomed"))
    await knm_client.put("/clusters/doomed", json={"description": "bye"}, headers=admin_headers)
    response = await knm_client.delete("/clusters/doomed", headers=admin_headers)
    assert assert_envelope(response, 200)["message"] == "cluster deleted"
    assert_envelope(await knm_client.get("/clusters/doomed", headers=admin_headers), 404)
    audit = assert_envelope(
        await knm_client.get("/audit?target=doomed", headers=admin_headers), 200
    )["data"]["entries"]
    assert [e["action"] for e in audit] == ["cluster.delete", "cluster.update", "cluster.create"]


async def test_clusters_are_listed_by_name_a_page_at_a_time(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    for name in ("page-c", "page-a", "page-b"):
        await create(knm_client, admin_headers, static(name))
    everything = assert_envelope(
        await knm_client.get("/clusters?page_size=100", headers=admin_headers), 200
    )["data"]
    names = [c["name"] for c in everything["clusters"]]
    assert names == sorted(names) and everything["total"] == len(names)
    second = assert_envelope(
        await knm_client.get("/clusters?page=2&page_size=2", headers=admin_headers), 200
    )["data"]
    assert [c["name"] for c in second["clusters"]] == names[2:4]
    assert_envelope(await knm_client.get("/clusters?page_size=101", headers=admin_headers), 400)


async def test_a_bastion_is_stored_and_shown(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    made = await create(
        knm_client, admin_headers, static("behind-jump", bastion={"address": "jump.example"})
    )
    assert made["bastion"] == {"address": "jump.example", "port": 22, "credential_id": None}
    cleared = await knm_client.put(
        "/clusters/behind-jump", json={"bastion": None}, headers=admin_headers
    )
    assert assert_envelope(cleared, 200)["data"]["bastion"] is None


async def test_a_bastion_credential_that_does_not_exist_is_404_when_credentials_exist(
    knm_client: ApiClient, admin_headers: dict[str, str], knm: Any
) -> None:
    body = static("jump-cred", bastion={"address": "10.9.9.9", "credential_id": 999})
    response = await knm_client.post("/clusters", json=body, headers=admin_headers)
    exists = await on_app_loop(knm_client, knm.pool.fetchval, "SELECT to_regclass('credentials')")
    if exists is None:
        assert_envelope(response, 201)  # no credential store to ask
    else:
        assert assert_envelope(response, 404)["error"] == "Credential ID 999 not found"


async def test_a_default_credential_is_set_by_admins_checked_and_kept_from_deletion(
    knm_client: ApiClient, admin_headers: dict[str, str], operator: dict[str, str]
) -> None:
    made = await knm_client.post(
        "/credentials",
        json={"name": "default-cred", "username": "root", "auth_type": "password",
              "password": "pw"},
        headers=admin_headers,
    )  # fmt: skip
    credential_id = assert_envelope(made, 201)["data"]["id"]
    plain = await create(knm_client, admin_headers, static("no-default"))
    assert plain["default_credential_id"] is None
    missing = static("bad-default", default_credential_id=99999)
    response = await knm_client.post("/clusters", json=missing, headers=admin_headers)
    assert assert_envelope(response, 404)["error"] == "Credential ID 99999 not found"
    wrong_type = static("bad-default", default_credential_id="1")
    response = await knm_client.post("/clusters", json=wrong_type, headers=admin_headers)
    assert "default_credential_id" in assert_envelope(response, 400)["error"]
    body = static("with-default", default_credential_id=credential_id)
    cluster = await create(knm_client, admin_headers, body)
    assert cluster["default_credential_id"] == credential_id
    refused = await knm_client.put(
        "/clusters/no-default", json={"default_credential_id": credential_id}, headers=operator
    )
    assert_envelope(refused, 403)
    changed = await knm_client.put(
        "/clusters/no-default", json={"default_credential_id": credential_id},
        headers=admin_headers,
    )  # fmt: skip
    assert assert_envelope(changed, 200)["data"]["default_credential_id"] == credential_id
    response = await knm_client.put(
        "/clusters/no-default", json={"default_credential_id": 99999}, headers=admin_headers
    )
    assert_envelope(response, 404)
    deleting = await knm_client.delete(f"/credentials/{credential_id}", headers=admin_headers)
    error = assert_envelope(deleting, 409)["error"]
    assert "no-default" in error and "with-default" in error
    for name in ("no-default", "with-default"):
        cleared = await knm_client.put(
            f"/clusters/{name}", json={"default_credential_id": None}, headers=admin_headers
        )
        assert assert_envelope(cleared, 200)["data"]["default_credential_id"] is None
    deleted = await knm_client.delete(f"/credentials/{credential_id}", headers=admin_headers)
    assert_envelope(deleted, 200)


# --- secret config fields --------------------------------------------------------------------


async def test_secret_config_fields_are_sealed_and_never_shown(
    knm_client: ApiClient, admin_headers: dict[str, str], knm: Any
) -> None:
    token = "s3cr3t-token-value"
    body = {"name": "vault", "kind": "secretive", "endpoint": "https://api", "token": token}
    made = await create(knm_client, admin_headers, body)
    assert "token" not in made and made["endpoint"] == "https://api"
    shown = await knm_client.get("/clusters/vault", headers=admin_headers)
    assert token not in shown.text and "token" not in assert_envelope(shown, 200)["data"]
    row = await on_app_loop(
        knm_client, knm.pool.fetchrow, "SELECT * FROM clusters WHERE name = 'vault'"
    )
    assert "token" not in row["config"] and row["secrets_ciphertext"] is not None
    assert token.encode() not in bytes(row["secrets_ciphertext"])
    nodes = assert_envelope(
        await knm_client.get("/clusters/vault/nodes", headers=admin_headers), 200
    )
    assert nodes["data"]["nodes"][0]["info"] == {"token_length": str(len(token))}
    audit = await knm_client.get("/audit?target=vault", headers=admin_headers)
    assert token not in audit.text


async def test_a_put_without_the_secret_keeps_it_and_with_it_replaces_it(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    body = {"name": "vault2", "kind": "secretive", "endpoint": "https://a", "token": "abc"}
    await create(knm_client, admin_headers, body)
    moved = await knm_client.put(
        "/clusters/vault2", json={"endpoint": "https://b"}, headers=admin_headers
    )
    assert assert_envelope(moved, 200)["data"]["endpoint"] == "https://b"
    nodes = await knm_client.get("/clusters/vault2/nodes", headers=admin_headers)
    assert assert_envelope(nodes, 200)["data"]["nodes"][0]["info"]["token_length"] == "3"
    await knm_client.put("/clusters/vault2", json={"token": "abcdefg"}, headers=admin_headers)
    nodes = await knm_client.get("/clusters/vault2/nodes", headers=admin_headers)
    assert assert_envelope(nodes, 200)["data"]["nodes"][0]["info"]["token_length"] == "7"
    empty = await knm_client.put("/clusters/vault2", json={"token": ""}, headers=admin_headers)
    assert "token must not be empty" in assert_envelope(empty, 422)["error"]


async def test_the_providers_check_can_refuse_a_cluster(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    body = {"name": "far", "kind": "secretive", "endpoint": "unreachable", "token": "t"}
    response = await knm_client.post("/clusters", json=body, headers=admin_headers)
    assert assert_envelope(response, 422)["error"] == "cannot reach unreachable"
    assert_envelope(await knm_client.get("/clusters/far", headers=admin_headers), 404)
    missing = await knm_client.post(
        "/clusters",
        json={"name": "far", "kind": "secretive", "endpoint": "x"},
        headers=admin_headers,
    )
    assert "missing required field `token`" in assert_envelope(missing, 400)["error"]


# --- nodes -------------------------------------------------------------------------------------

FLEET = [
    node("cp1", "10.0.1.1", labels={"node-role.kubernetes.io/control-plane": "", "zone": "a"}),
    node("w1", "10.0.1.2", port=2201, labels={WORKER: "", "zone": "a"}),
    node("w2", "10.0.1.3", labels={WORKER: "", "zone": "b", "gpu": "yes"}),
    node("w3", "10.0.1.4", labels={WORKER: "", "zone": "b"}),
]


@pytest.fixture(scope="module")
async def fleet(knm_client: ApiClient, admin_headers: dict[str, str]) -> str:
    await create(knm_client, admin_headers, static("fleet", FLEET))
    return "fleet"


async def test_nodes_are_listed_with_roles_in_the_clusters_order(
    knm_client: ApiClient, viewer: dict[str, str], fleet: str
) -> None:
    data = assert_envelope(await knm_client.get(f"/clusters/{fleet}/nodes", headers=viewer), 200)[
        "data"
    ]
    assert data["total"] == 4
    assert [n["name"] for n in data["nodes"]] == ["cp1", "w1", "w2", "w3"]
    assert data["nodes"][0] == {
        "name": "cp1", "address": "10.0.1.1", "port": None,
        "labels": {"node-role.kubernetes.io/control-plane": "", "zone": "a"},
        "ready": None, "schedulable": None, "roles": ["control-plane"], "info": {},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("selector", "names"),
    [
        (WORKER, ["w1", "w2", "w3"]),
        (f"{WORKER},zone=b", ["w2", "w3"]),
        ("zone in (a),!gpu", ["cp1", "w1"]),
        ("gpu!=yes", ["cp1", "w1", "w3"]),
        ("zone notin (a,b)", []),
    ],
)
async def test_nodes_can_be_chosen_with_a_label_selector(
    knm_client: ApiClient, viewer: dict[str, str], fleet: str, selector: str, names: list[str]
) -> None:
    response = await knm_client.get(
        f"/clusters/{fleet}/nodes", params={"selector": selector}, headers=viewer
    )
    data = assert_envelope(response, 200)["data"]
    assert [n["name"] for n in data["nodes"]] == names and data["total"] == len(names)


async def test_nodes_are_paged_and_a_bad_selector_is_422(
    knm_client: ApiClient, viewer: dict[str, str], fleet: str
) -> None:
    response = await knm_client.get(
        f"/clusters/{fleet}/nodes", params={"page": 2, "page_size": 3}, headers=viewer
    )
    data = assert_envelope(response, 200)["data"]
    assert data["total"] == 4 and [n["name"] for n in data["nodes"]] == ["w3"]
    bad = await knm_client.get(
        f"/clusters/{fleet}/nodes", params={"selector": "zone in ("}, headers=viewer
    )
    assert "invalid label selector" in assert_envelope(bad, 422)["error"]


# --- resolving targets -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def resolve(knm_client: ApiClient, knm: Any, fleet: str) -> Callable[..., Awaitable[Resolution]]:
    async def run(credential_port: int | None = None, **fields: Any) -> Resolution:
        request = TargetRequest(cluster_name=fields.pop("cluster_name", fleet), **fields)

        async def on_loop() -> Resolution:
            return await resolve_targets(knm, request, credential_port=credential_port)

        return await on_app_loop(knm_client, on_loop)

    return run


Resolve = Callable[..., Awaitable[Resolution]]


async def test_named_targets_resolve_in_the_requests_order(resolve: Resolve) -> None:
    resolution = await resolve(target_nodes=["w3", "cp1"])
    assert resolution.node_names == ["w3", "cp1"]
    assert [n.address for n in resolution.nodes] == ["10.0.1.4", "10.0.1.1"]
    assert resolution.cluster.name == "fleet" and resolution.cluster.kind == "static"
    assert resolution.bastion is None


async def test_selected_targets_resolve_in_the_clusters_order(resolve: Resolve) -> None:
    resolution = await resolve(target_selector=f"zone in (b,a),{WORKER}")
    assert resolution.node_names == ["w1", "w2", "w3"]


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ({"target_nodes": ["w1"], "target_selector": "zone=a"}, "target_nodes: give either"),
        ({}, "target_nodes: required (node names), or target_selector"),
        ({"target_selector": "  "}, "target_nodes: required (node names), or target_selector"),
    ],
)
async def test_targets_missing_or_given_twice_are_a_bad_request(
    resolve: Resolve, fields: dict[str, Any], detail: str
) -> None:
    with pytest.raises(BadRequest) as caught:
        await resolve(**fields)
    assert detail in caught.value.error


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        (
            {"target_nodes": ["w1", "node7", "cp1", "node9"]},
            "unknown nodes in cluster fleet: node7, node9",
        ),
        ({"target_nodes": ["w1", "w2", "w1"]}, "duplicate nodes in target_nodes: w1"),
        (
            {"target_selector": "zone=c"},
            "target_selector 'zone=c' matches no node in cluster fleet",
        ),
        ({"target_selector": "zone=="}, "matches no node"),
        ({"target_selector": "zone in"}, "invalid label selector"),
    ],
)
async def test_targets_that_do_not_resolve_are_invalid(
    resolve: Resolve, fields: dict[str, Any], detail: str
) -> None:
    with pytest.raises(Invalid) as caught:
        await resolve(**fields)
    assert detail in caught.value.error


async def test_targets_in_an_unknown_cluster_are_not_found(resolve: Resolve) -> None:
    with pytest.raises(NotFound) as caught:
        await resolve(cluster_name="production", target_nodes=["node1"])
    assert caught.value.error == "Cluster production not found"


async def test_the_ssh_port_is_the_nodes_then_the_credentials_then_22(resolve: Resolve) -> None:
    with_credential = await resolve(credential_port=2222, target_nodes=["w1", "w2"])
    assert [n.port for n in with_credential.nodes] == [2201, 2222]
    without = await resolve(target_nodes=["w1", "w2"])
    assert [n.port for n in without.nodes] == [2201, 22]


async def test_the_resolution_carries_the_clusters_bastion(
    knm_client: ApiClient, admin_headers: dict[str, str], resolve: Resolve
) -> None:
    await create(
        knm_client, admin_headers, static("jumped", bastion={"address": "10.2.0.1", "port": 2022})
    )
    resolution = await resolve(cluster_name="jumped", target_nodes=["node1"])
    assert resolution.bastion is not None
    assert (resolution.bastion.address, resolution.bastion.port) == ("10.2.0.1", 2022)


def test_a_target_request_is_the_base_of_executor_requests() -> None:
    class SshRequest(TargetRequest, kw_only=True):
        command: str

    decoded = msgspec.json.decode(
        b'{"cluster_name": "lab", "target_nodes": ["n1"], "credential_id": 1, "command": "uptime"}',
        type=SshRequest,
    )
    assert decoded.target_nodes == ["n1"] and decoded.target_selector is None
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.json.decode(b'{"cluster_name": "lab", "command": "x", "oops": 1}', type=SshRequest)


# --- providers ---------------------------------------------------------------------------------


class _Twin(ClusterProvider):
    kind = "static"
    config_type = msgspec.defstruct("TwinConfig", [("nodes", list)])

    async def list_nodes(self, knm: Any, cluster: Any) -> list[Node]:
        return []


class _TwinPlugin:
    @hookimpl
    def knm_cluster_providers(self) -> list[ClusterProvider]:
        return [_Twin()]


def test_two_providers_of_one_kind_are_an_error_at_start_up(knm: Any) -> None:
    from knm.core.manager import make_plugin_manager
    from knm.core.registry import Registry, StartupError

    pm = make_plugin_manager(load_entrypoints=False, extra_plugins=[_TwinPlugin()])
    with pytest.raises(StartupError, match="cluster kind 'static' is given twice"):
        Registry(pm)
    assert sorted(knm.registry.cluster_providers) == ["kubernetes", "secretive", "static"]


# --- never a 500 -------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
names = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,8}", fullmatch=True) | st.text(max_size=12)
addresses = st.sampled_from(["10.0.0.1", "fd00::1", "h.example", "10.0.0.300", ""]) | st.text(
    max_size=20
)
label_maps = st.dictionaries(
    st.sampled_from([WORKER, "zone", "Bad Key", ""]) | st.text(max_size=12),
    st.sampled_from(["", "a", "-b"]) | st.text(max_size=12),
    max_size=3,
)
well_typed_nodes = st.fixed_dictionaries(
    {"name": names, "address": addresses},
    optional={"port": st.none() | st.integers(-5, 70_000), "labels": label_maps},
)
bastions = st.none() | st.fixed_dictionaries(
    {"address": addresses},
    optional={"port": st.integers(-1, 70_000), "credential_id": st.none() | st.integers(-1, 3)},
)
#: Bodies of the right shape with arbitrary values: they reach the value rules (201 or 422).
well_typed_bodies = st.fixed_dictionaries(
    {"name": names, "kind": st.sampled_from(["static", "static", "kubernetes"])},
    optional={
        "description": st.text(max_size=30),
        "nodes": st.lists(well_typed_nodes, max_size=4),
        "bastion": bastions,
    },
)
#: Bodies of any shape: they mostly stop at decoding (400).
any_bodies = json_values | st.fixed_dictionaries(
    {},
    optional={
        "name": names | json_values,
        "kind": st.just("static") | json_values,
        "description": json_values,
        "nodes": st.lists(well_typed_nodes | json_values, max_size=3) | json_values,
        "bastion": bastions | json_values,
        "surprise": json_values,
    },
)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=well_typed_bodies | any_bodies)
async def test_no_cluster_body_is_ever_a_500(
    knm_client: ApiClient, admin_headers: dict[str, str], body: Any
) -> None:
    created = await knm_client.post("/clusters", json=body, headers=admin_headers)
    assert created.status_code in (201, 400, 404, 409, 422), created.text
    event(f"POST {created.status_code}")
    assert_envelope(created, created.status_code)
    # Without the name, so that the cluster under change keeps its name for the next example.
    change = {k: v for k, v in body.items() if k != "name"} if isinstance(body, dict) else body
    changed = await knm_client.put("/clusters/fleet-fuzz", json=change, headers=admin_headers)
    assert changed.status_code in (200, 400, 404, 409, 422), changed.text
    event(f"PUT {changed.status_code}")
    assert_envelope(changed, changed.status_code)
    if created.status_code == 201:
        # Leave no cluster behind: another test of the module may create that very name
        # (hypothesis tries "0" and "a" early), in whatever order the tests run.
        name = created.json()["data"]["name"]
        assert (
            await knm_client.delete(f"/clusters/{name}", headers=admin_headers)
        ).status_code == 200


@pytest.fixture(scope="module", autouse=True)
async def fuzz_target(knm_client: ApiClient, admin_headers: dict[str, str]) -> None:
    await create(knm_client, admin_headers, static("fleet-fuzz", [node("f1")]))
