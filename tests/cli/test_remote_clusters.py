"""``knm cluster create NAME --kubeconfig FILE [--context C]`` against a real server and the
Kubernetes API stand-in: the file read and sent as its text, the context checked against the
file and passed on, fields from ``-f`` kept, and a path where the text belongs refused with the
option that reads it."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml

from knm.client import Client, ValidationFailed
from knm.testing.k8s_standin import KubeStandin

from .conftest import Knm

_names = itertools.count(1)


def cluster_name() -> str:
    return f"kc-{next(_names)}"


def two_contexts(kube: KubeStandin) -> str:
    """A kubeconfig whose current context ("other") has a token the API refuses, beside a
    working one ("standin")."""
    good = kube.kubeconfig_dict()
    bad = kube.kubeconfig_dict(user_token="wrong-token", context="other")
    for section in ("clusters", "users", "contexts"):
        good[section] = [*good[section], *bad[section]]
    good["current-context"] = "other"
    return yaml.safe_dump(good, sort_keys=False)


def test_create_reads_the_kubeconfig_file_and_lists_the_clusters_nodes(
    knm: Knm, kube_standin: KubeStandin, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    config.write_text(kube_standin.kubeconfig())
    name = cluster_name()
    created = knm("cluster", "create", name, "--kubeconfig", str(config), "--json")
    assert created.code == 0, created.err
    body = created.json()
    assert (body["name"], body["kind"]) == (name, "kubernetes")
    assert "kubeconfig" not in body and kube_standin.token not in created.out
    nodes = knm("cluster", "nodes", name, "--json").json()
    assert {"w1", "w2", "w3"} <= {n["name"] for n in nodes["nodes"]}

    from_stdin = knm(
        "cluster", "create", cluster_name(), "--kubeconfig", "-", stdin=kube_standin.kubeconfig()
    )
    assert from_stdin.code == 0, from_stdin.err
    assert from_stdin.out.startswith("created cluster kc-") and "(kubernetes)" in from_stdin.out


def test_context_picks_the_kubeconfig_context_the_server_uses(
    knm: Knm, kube_standin: KubeStandin, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    config.write_text(two_contexts(kube_standin))
    refused = knm("cluster", "create", cluster_name(), "--kubeconfig", str(config), "--json")
    assert refused.code == 4 and refused.json()["code"] == 422  # "other" cannot log in

    name = cluster_name()
    chosen = knm(
        "cluster", "create", name, "--kubeconfig", str(config), "--context", "standin", "--json"
    )
    assert chosen.code == 0, chosen.err
    assert chosen.json()["context"] == "standin"
    assert knm("cluster", "nodes", name).code == 0

    unknown = knm("cluster", "create", cluster_name(), "--kubeconfig", str(config),
                  "--context", "prod")  # fmt: skip
    assert unknown.code == 2
    assert f"--context prod: {config} has no such context; it has: standin, other" in unknown.err


def test_fields_from_a_file_join_the_kubeconfig(
    knm: Knm, kube_standin: KubeStandin, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    config.write_text(kube_standin.kubeconfig())
    spec = tmp_path / "spec.yaml"
    name = cluster_name()
    spec.write_text(f"name: {name}\nkind: kubernetes\nmax_unavailable: 2\n")
    created = knm("cluster", "create", "-f", str(spec), "--kubeconfig", str(config), "--json")
    assert created.code == 0, created.err
    assert (created.json()["name"], created.json()["max_unavailable"]) == (name, 2)
    static = tmp_path / "static.yaml"
    static.write_text("name: lab\nkind: static\nnodes: []\n")
    wrong_kind = knm("cluster", "create", "-f", str(static), "--kubeconfig", str(config))
    assert wrong_kind.code == 2 and "--kubeconfig is for kubernetes clusters" in wrong_kind.err


def test_a_path_where_the_kubeconfig_text_belongs_gets_a_hint_naming_the_option(
    knm: Knm, admin: Client, tmp_path: Path
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"name: {cluster_name()}\nkind: kubernetes\nkubeconfig: ~/.kube/config\n")
    hinted = knm("cluster", "create", "-f", str(spec))
    assert hinted.code == 2
    assert "'~/.kube/config' looks like a path" in hinted.err
    assert "give it with --kubeconfig ~/.kube/config" in hinted.err

    with pytest.raises(ValidationFailed) as refused:
        admin.create_cluster(cluster_name(), "kubernetes", kubeconfig="/root/.kube/config")
    assert "not its path" in refused.value.error and "--kubeconfig FILE" in refused.value.error


def test_a_kubeconfig_that_cannot_be_read_is_a_usage_error_that_never_echoes_secrets(
    knm: Knm, kube_standin: KubeStandin, tmp_path: Path
) -> None:
    missing = knm("cluster", "create", cluster_name(), "--kubeconfig", str(tmp_path / "nope"))
    assert missing.code == 2 and "No such file" in missing.err
    text = kube_standin.kubeconfig()
    pasted = knm("cluster", "create", cluster_name(), "--kubeconfig", text)
    assert pasted.code == 2 and "not its text" in pasted.err
    assert kube_standin.token not in pasted.err
    not_kube = tmp_path / "list.yaml"
    not_kube.write_text("- a\n")
    wrong = knm("cluster", "create", cluster_name(), "--kubeconfig", str(not_kube))
    assert wrong.code == 2 and "not a kubeconfig" in wrong.err
    nothing = knm("cluster", "create", cluster_name())
    assert nothing.code == 2 and "give -f FILE" in nothing.err
