"""The ``static`` cluster provider: nodes listed by hand."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from knm.core.clusters import Cluster
from knm.core.manager import make_plugin_manager
from knm.core.registry import Registry
from knm.plugins.static.provider import MAX_NODES, StaticConfig, StaticNode, StaticProvider

WORKER = "node-role.kubernetes.io/worker"


def config(*nodes: dict[str, Any]) -> StaticConfig:
    return msgspec.convert({"nodes": list(nodes)}, StaticConfig)


def test_the_builtin_plugin_provides_the_static_kind() -> None:
    registry = Registry(make_plugin_manager(load_entrypoints=False))
    assert isinstance(registry.cluster_providers["static"], StaticProvider)


def test_a_well_formed_inventory_has_no_problems() -> None:
    good = config(
        {"name": "node1", "address": "10.0.0.5", "port": 22, "labels": {WORKER: ""}},
        {"name": "node2.lab", "address": "node2.lab.example"},
        {"name": "v6", "address": "fd00::5", "port": 65535},
    )
    assert StaticProvider().validate(good) == []


@pytest.mark.parametrize(
    ("node", "problem"),
    [
        ({"name": "Node1", "address": "10.0.0.5"}, "nodes[0]: name 'Node1'"),
        ({"name": "-n", "address": "10.0.0.5"}, "nodes[0]: name '-n'"),
        ({"name": "", "address": "10.0.0.5"}, "nodes[0]: name ''"),
        ({"name": "n", "address": "10.0.0.256"}, "address '10.0.0.256' is neither"),
        ({"name": "n", "address": "bad host"}, "address 'bad host' is neither"),
        ({"name": "n", "address": ""}, "address '' is neither"),
        ({"name": "n", "address": "-x.example"}, "address '-x.example' is neither"),
        ({"name": "n", "address": "10.0.0.5", "port": 0}, "port must be between 1 and 65535"),
        ({"name": "n", "address": "10.0.0.5", "port": 65536}, "port must be between 1 and 65535"),
        ({"name": "n", "address": "h", "labels": {"a/b/c": ""}}, "label key 'a/b/c'"),
        ({"name": "n", "address": "h", "labels": {"k": "-v"}}, "label value '-v'"),
    ],
)
def test_bad_values_are_named_with_the_nodes_index(node: dict[str, Any], problem: str) -> None:
    problems = StaticProvider().validate(config(node))
    assert len(problems) == 1 and problem in problems[0], problems


def test_duplicate_node_names_are_named_once_each() -> None:
    nodes = [{"name": name, "address": "h"} for name in ("a", "b", "a", "c", "b", "a")]
    assert StaticProvider().validate(config(*nodes)) == ["duplicate node names: a, b"]


def test_an_inventory_has_a_size_limit() -> None:
    huge = StaticConfig(nodes=[StaticNode(name="n", address="h")] * (MAX_NODES + 1))
    assert StaticProvider().validate(huge) == [f"a static cluster holds at most {MAX_NODES} nodes"]


async def test_nodes_are_listed_in_order_with_roles_from_their_labels() -> None:
    inventory = config(
        {
            "name": "cp",
            "address": "10.0.0.1",
            "labels": {"node-role.kubernetes.io/control-plane": ""},
        },
        {"name": "w", "address": "10.0.0.2", "port": 2222, "labels": {WORKER: "", "zone": "a"}},
        {"name": "plain", "address": "plain.example"},
    )
    cluster = Cluster(id=1, name="lab", kind="static", config=inventory)
    nodes = await StaticProvider().list_nodes(None, cluster)  # type: ignore[arg-type]
    assert [(n.name, n.address, n.port, n.roles) for n in nodes] == [
        ("cp", "10.0.0.1", None, ["control-plane"]),
        ("w", "10.0.0.2", 2222, ["worker"]),
        ("plain", "plain.example", None, []),
    ]
    assert nodes[1].labels == {WORKER: "", "zone": "a"}
    assert (nodes[0].ready, nodes[0].schedulable, nodes[0].info) == (None, None, {})


def test_the_whole_config_is_public() -> None:
    inventory = config({"name": "n", "address": "h"})
    assert StaticProvider().public_config(inventory) == {
        "nodes": [{"name": "n", "address": "h", "port": None, "labels": {}}]
    }
