"""The ``kubernetes`` cluster provider: registering a cluster and listing its nodes."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from knm.plugins.k8s.client import kubeconfig_problems, runs_commands
from knm.testing.client import ApiClient, assert_envelope
from knm.testing.k8s_standin import KubeStandin
from knm.testing.kube import KUBE_TOKEN, register_kube_cluster, standin
from knm.testing.tasks import start_task, wait_for_task

EXEC_CREDENTIAL = json.dumps(
    {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "kind": "ExecCredential",
        "status": {"token": KUBE_TOKEN},
    }
)


def exec_kubeconfig(kube: KubeStandin) -> str:
    doc = kube.kubeconfig_dict()
    doc["users"][0]["user"] = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "sh",
            "args": ["-c", f"echo '{EXEC_CREDENTIAL}'"],
        }
    }
    return yaml.safe_dump(doc)


async def create(client: ApiClient, headers: dict[str, str], **body: Any) -> Any:
    return await client.post("/clusters", json={"kind": "kubernetes", **body}, headers=headers)


async def test_a_cluster_is_registered_with_a_kubeconfig_that_is_never_shown(
    knm_client: ApiClient, admin_headers: dict[str, str], kube_standin: KubeStandin
) -> None:
    response = await create(
        knm_client, admin_headers, name="prod", kubeconfig=kube_standin.kubeconfig()
    )
    data = assert_envelope(response, 201)["data"]
    assert data["kind"] == "kubernetes"
    assert "kubeconfig" not in data
    assert data["address_order"] == ["InternalIP", "ExternalIP", "Hostname"]
    assert data["max_unavailable"] == 1 and data["in_cluster"] is False
    shown = assert_envelope(await knm_client.get("/clusters/prod", headers=admin_headers), 200)
    assert "kubeconfig" not in shown["data"]
    listed = (await knm_client.get("/clusters", headers=admin_headers)).text
    assert KUBE_TOKEN not in listed and "kubeconfig" not in listed


async def test_nodes_are_listed_with_addresses_roles_labels_taints_and_readiness(
    knm_client: ApiClient, admin_headers: dict[str, str], kube_standin: KubeStandin
) -> None:
    kube_standin.add_node("w4", ready=False, unschedulable=True)
    name = await register_kube_cluster(knm_client, admin_headers, kube_standin, "listing")
    response = await knm_client.get(
        f"/clusters/{name}/nodes", params={"page_size": 100}, headers=admin_headers
    )
    data = assert_envelope(response, 200)["data"]
    nodes = {node["name"]: node for node in data["nodes"]}
    assert data["total"] == 5 and sorted(nodes) == ["cp1", "w1", "w2", "w3", "w4"]
    cp1, w1, w2, w4 = nodes["cp1"], nodes["w1"], nodes["w2"], nodes["w4"]
    assert cp1["roles"] == ["control-plane"] and w1["roles"] == ["worker"]
    assert cp1["info"]["taints"] == "node-role.kubernetes.io/control-plane:NoSchedule"
    assert w1["info"]["taints"] == ""
    assert cp1["info"]["kubelet_version"].startswith("v1.")
    assert w1["labels"]["pool"] == "a"
    assert (w1["address"], w2["address"]) == ("192.0.2.11", "198.51.100.12")
    assert "ExternalIP=198.51.100.11" in w1["info"]["addresses"]
    assert w1["ready"] is True and w1["schedulable"] is True
    assert w4["ready"] is False and w4["schedulable"] is False
    chosen = await knm_client.get(
        f"/clusters/{name}/nodes", params={"selector": "pool=a"}, headers=admin_headers
    )
    assert [n["name"] for n in chosen.json()["data"]["nodes"]] == ["w1", "w2"]


async def test_address_order_picks_the_first_address_type_a_node_has(
    knm_client: ApiClient, admin_headers: dict[str, str], kube_standin: KubeStandin
) -> None:
    name = await register_kube_cluster(
        knm_client, admin_headers, kube_standin, "external", address_order=["ExternalIP"]
    )
    response = await knm_client.get(f"/clusters/{name}/nodes", headers=admin_headers)
    nodes = {n["name"]: n["address"] for n in response.json()["data"]["nodes"]}
    # w3 has no ExternalIP: its name stands in.
    assert nodes["w1"] == "198.51.100.11" and nodes["w3"] == "w3"


async def test_a_kubeconfig_that_runs_a_command_needs_the_setting(
    knm_client: ApiClient, admin_headers: dict[str, str], kube_standin: KubeStandin
) -> None:
    body = {"name": "execd", "kubeconfig": exec_kubeconfig(kube_standin)}
    refused = assert_envelope(await create(knm_client, admin_headers, **body), 422)
    assert "allow_kubeconfig_exec" in refused["error"]
    provider = kube_standin.kubeconfig_dict()
    provider["users"][0]["user"] = {"auth-provider": {"name": "oidc", "config": {}}}
    other = await create(
        knm_client, admin_headers, name="oidc", kubeconfig=yaml.safe_dump(provider)
    )
    assert "allow_kubeconfig_exec" in assert_envelope(other, 422)["error"]

    settings = "/features/automation/k8s"
    on = await knm_client.put(settings, json={"allow_kubeconfig_exec": True}, headers=admin_headers)
    assert_envelope(on, 200)
    try:
        assert_envelope(await create(knm_client, admin_headers, **body), 201)
        response = await knm_client.get("/clusters/execd/nodes", headers=admin_headers)
        assert assert_envelope(response, 200)["data"]["total"] == 4
    finally:
        off = {"allow_kubeconfig_exec": False}
        assert_envelope(await knm_client.put(settings, json=off, headers=admin_headers), 200)


async def test_a_cluster_whose_api_does_not_answer_is_refused(
    knm_client: ApiClient, admin_headers: dict[str, str], kube_standin: KubeStandin
) -> None:
    wrong = kube_standin.kubeconfig(user_token="wrong")
    response = await create(knm_client, admin_headers, name="wrong-token", kubeconfig=wrong)
    body = assert_envelope(response, 422)
    assert "/version" in body["error"] and "Unauthorized" in body["error"]
    assert "wrong" not in body["error"].replace("wrong-token", "")
    gone = standin(populate=False)
    kubeconfig = gone.kubeconfig()
    gone.stop()
    response = await create(knm_client, admin_headers, name="gone", kubeconfig=kubeconfig)
    assert "unreachable" in assert_envelope(response, 422)["error"]
    missing = await knm_client.get("/clusters/gone", headers=admin_headers)
    assert_envelope(missing, 404)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"kubeconfig": ""}, "give kubeconfig (YAML) or in_cluster: true"),
        ({"in_cluster": True, "kubeconfig": "x"}, "not both"),
        ({"kubeconfig": "a: [b"}, "kubeconfig is not valid YAML"),
        ({"kubeconfig": "- a"}, "kubeconfig must be a YAML mapping"),
        ({"context": "nope"}, "kubeconfig has no context 'nope'"),
        ({"address_order": ["InternalIP", "Bogus"]}, "unknown address type 'Bogus'"),
        ({"address_order": []}, "address_order must name at least one"),
        ({"max_unavailable": 0}, "max_unavailable must be between 1 and 10000"),
    ],
)
async def test_bad_values_are_refused_with_422(
    knm_client: ApiClient,
    admin_headers: dict[str, str],
    kube_standin: KubeStandin,
    fields: dict[str, Any],
    problem: str,
) -> None:
    body: dict[str, Any] = {"name": "bad", "kubeconfig": kube_standin.kubeconfig(), **fields}
    assert problem in assert_envelope(await create(knm_client, admin_headers, **body), 422)["error"]


async def test_a_cluster_without_kubeconfig_or_in_cluster_is_a_missing_field_400(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    response = await create(knm_client, admin_headers, name="no-kubeconfig")
    assert "`kubeconfig`" in assert_envelope(response, 400)["error"]
    assert_envelope(await knm_client.get("/clusters/no-kubeconfig", headers=admin_headers), 404)


async def test_unknown_fields_and_wrong_types_are_400(
    knm_client: ApiClient, admin_headers: dict[str, str], kube_standin: KubeStandin
) -> None:
    config = kube_standin.kubeconfig()
    unknown = await create(knm_client, admin_headers, name="x", kubeconfig=config, extra=1)
    assert "extra" in assert_envelope(unknown, 400)["error"]
    typed = await create(
        knm_client, admin_headers, name="x", kubeconfig=config, max_unavailable="2"
    )
    assert "max_unavailable" in assert_envelope(typed, 400)["error"]


def test_kubeconfigs_naming_server_files_are_refused() -> None:
    doc = {
        "clusters": [
            {"name": "c", "cluster": {"server": "https://k", "certificate-authority": "/ca"}}
        ],
        "users": [{"name": "u", "user": {"tokenFile": "/var/run/token"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    problems = kubeconfig_problems(yaml.safe_dump(doc), None)
    assert len(problems) == 2
    assert "certificate-authority" in problems[0] and "tokenFile" in problems[1]
    assert runs_commands(yaml.safe_dump(doc)) == []


async def test_the_kubeconfig_never_reaches_responses_audit_or_task_rows(
    knm_client: ApiClient, admin_headers: dict[str, str], kube_standin: KubeStandin
) -> None:
    marker = "sekrit-token-for-leak-test"
    kube = standin(token=marker)
    try:
        name = await register_kube_cluster(
            knm_client, admin_headers, kube, "leak", kubeconfig=kube.kubeconfig()
        )
        task = await start_task(
            knm_client, admin_headers, "k8s", cluster_name=name, target_nodes=["w1"],
            action="label", params={"labels": {"leak": "checked"}},
        )  # fmt: skip
        status = await wait_for_task(knm_client, admin_headers, task["task_id"])
        assert status["status"] == "completed"
        texts = [
            json.dumps(status),
            (await knm_client.get("/clusters/leak", headers=admin_headers)).text,
            (await knm_client.get("/clusters", headers=admin_headers)).text,
            (await knm_client.get(f"/clusters/{name}/nodes", headers=admin_headers)).text,
            (await knm_client.get("/audit?page_size=100", headers=admin_headers)).text,
            (await knm_client.get(f"/tasks/{task['task_id']}/events", headers=admin_headers)).text,
        ]
        pool = knm_client.http.app.state["knm"].pool  # type: ignore[attr-defined]

        async def rows() -> list[str]:
            tasks = await pool.fetch("SELECT request::text, summary::text, result::text FROM tasks")
            clusters = await pool.fetch("SELECT config::text FROM clusters")
            audit = await pool.fetch("SELECT detail::text FROM audit_log")
            return [str(tuple(r)) for r in [*tasks, *clusters, *audit]]

        texts += await knm_client.on_app(rows)
        for text in texts:
            assert marker not in text
            assert "current-context" not in text
    finally:
        kube.stop()
