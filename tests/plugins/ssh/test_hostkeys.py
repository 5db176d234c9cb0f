"""Host key pinning: tofu pins and refuses a changed key, strict needs a pin, off accepts all."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import asyncssh
import pytest

from knm.testing.client import ApiClient, assert_envelope
from knm.testing.fleet import FleetCluster, create_fleet_cluster, fleet_nodes

Runner = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture(scope="module", params=["asyncssh", "libssh2"])
def ssh_client(request: pytest.FixtureRequest) -> str:
    """Every test here runs with each SSH client (the settings' ``client``)."""
    return str(request.param)


@pytest.fixture
async def db(knm_database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(knm_database_url)
    yield conn
    await conn.close()


@pytest.fixture
async def policy(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> AsyncIterator[Callable[[str], Awaitable[None]]]:
    async def set_policy(name: str) -> None:
        response = await knm_client.put(
            "/features/automation/ssh", json={"host_key_policy": name}, headers=admin_headers
        )
        assert_envelope(response, 200)

    yield set_policy
    await set_policy("tofu")


@pytest.fixture(autouse=True)
async def no_pins(db: asyncpg.Connection, fleet: FleetCluster) -> AsyncIterator[None]:
    """Each test starts with the shared fleet cluster unpinned and leaves it so: tests here pin
    other keys on purpose, which any later test reaching those nodes would meet."""
    forget = "DELETE FROM ssh_host_keys WHERE cluster_name = $1"
    await db.execute(forget, fleet.cluster_name)
    yield
    await db.execute(forget, fleet.cluster_name)


def by_node(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {result["node"]: result for result in status["results"]}


async def pin_other_key(
    db: asyncpg.Connection, cluster: str, node: str, algorithm: str = "ssh-ed25519"
) -> None:
    """Makes the pin differ from the node's key, as if the node had been rebuilt."""
    other = asyncssh.generate_private_key(algorithm).convert_to_public()
    line = " ".join(other.export_public_key().decode().split()[:2])
    updated = await db.execute(
        "UPDATE ssh_host_keys SET public_key = $3, fingerprint = $4 WHERE cluster_name = $1 AND node = $2",
        cluster, node, line, other.get_fingerprint(),
    )  # fmt: skip
    assert updated == "UPDATE 1"


async def test_the_first_connection_pins_each_nodes_key(
    run_ssh: Runner, fleet: FleetCluster, knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    await run_ssh(command="true")
    response = await knm_client.get(
        f"/automation/ssh/host-keys?cluster={fleet.cluster_name}", headers=admin_headers
    )
    data = assert_envelope(response, 200)["data"]
    assert data["total"] == 3
    expected = asyncssh.import_public_key(fleet.fleet.host_key_public).get_fingerprint()
    assert {(p["node"], p["fingerprint"]) for p in data["host_keys"]} == {
        (n, expected) for n in fleet.nodes
    }
    assert data["host_keys"][0]["public_key"].startswith("ssh-ed25519 ")


async def test_a_changed_key_fails_that_node_with_host_key_changed_even_when_pooled(
    run_ssh: Runner, fleet: FleetCluster, db: asyncpg.Connection
) -> None:
    await run_ssh(command="true")  # leaves pooled connections behind
    await pin_other_key(db, fleet.cluster_name, "node2")
    status = await run_ssh(command="echo hi")
    results = by_node(status)
    assert (results["node2"]["status"], results["node2"]["reason"]) == (
        "failed",
        "host_key_changed",
    )
    assert f"/automation/ssh/host-keys/{fleet.cluster_name}/node2" in results["node2"]["message"]
    assert results["node1"]["status"] == results["node3"]["status"] == "success"


async def test_forgetting_the_pin_lets_the_node_in_again_and_pins_anew(
    run_ssh: Runner, fleet: FleetCluster, db: asyncpg.Connection,
    knm_client: ApiClient, admin_headers: dict[str, str],
) -> None:  # fmt: skip
    await run_ssh(command="true", target_nodes=["node3"])
    await pin_other_key(db, fleet.cluster_name, "node3")
    failed = await run_ssh(command="true", target_nodes=["node3"])
    assert failed["results"][0]["reason"] == "host_key_changed"
    forgotten = "SELECT count(*) FROM audit_log WHERE action = 'ssh.host_key.forget'"
    audited_before = await db.fetchval(forgotten)
    response = await knm_client.delete(
        f"/automation/ssh/host-keys/{fleet.cluster_name}/node3", headers=admin_headers
    )
    assert_envelope(response, 200)
    ok = await run_ssh(command="true", target_nodes=["node3"])
    assert ok["results"][0]["status"] == "success"
    pinned = await db.fetchval(
        "SELECT public_key FROM ssh_host_keys WHERE cluster_name = $1 AND node = 'node3'",
        fleet.cluster_name,
    )
    assert pinned == " ".join(fleet.fleet.host_key_public.split()[:2])
    # Other tests forget pins too: this forget is one more entry, whatever ran before.
    assert await db.fetchval(forgotten) == audited_before + 1


async def test_forgetting_needs_an_admin_and_an_existing_pin(
    knm_client: ApiClient, admin_headers: dict[str, str], fleet: FleetCluster, ssh_client: str
) -> None:
    viewer = await knm_client.create_user(admin_headers, f"hostkey-viewer-{ssh_client}", "viewer")
    path = f"/automation/ssh/host-keys/{fleet.cluster_name}/node1"
    assert_envelope(await knm_client.delete(path, headers=viewer), 403)
    assert_envelope(await knm_client.get("/automation/ssh/host-keys", headers=viewer), 200)
    missing = await knm_client.delete(
        f"/automation/ssh/host-keys/{fleet.cluster_name}/nope", headers=admin_headers
    )
    assert "nope" in assert_envelope(missing, 404)["error"]


async def test_strict_refuses_unpinned_nodes_until_an_admin_pins_them(
    run_ssh: Runner, fleet: FleetCluster, policy: Callable[[str], Awaitable[None]],
    knm_client: ApiClient, admin_headers: dict[str, str], ssh_client: str,
) -> None:  # fmt: skip
    cluster = await create_fleet_cluster(
        knm_client,
        admin_headers,
        fleet.fleet,
        f"strict-lab-{ssh_client}",
        nodes=fleet_nodes(fleet.fleet, faults=False),
    )
    await policy("strict")
    refused = await run_ssh(command="true", cluster_name=cluster, target_nodes=["node1"])
    assert refused["results"][0]["reason"] == "host_key_unknown"
    bad = await knm_client.put(
        f"/automation/ssh/host-keys/{cluster}/node1",
        json={"public_key": "nonsense"},
        headers=admin_headers,
    )
    assert_envelope(bad, 422)
    good = await knm_client.put(
        f"/automation/ssh/host-keys/{cluster}/node1",
        json={"public_key": fleet.fleet.host_key_public}, headers=admin_headers,
    )  # fmt: skip
    assert_envelope(good, 200)
    status = await run_ssh(command="true", cluster_name=cluster, target_nodes=["node1", "node2"])
    results = by_node(status)
    assert results["node1"]["status"] == "success"
    assert results["node2"]["reason"] == "host_key_unknown"


async def test_strict_accepts_a_host_certificate_signed_by_a_trusted_ca(
    fleet: FleetCluster, policy: Callable[[str], Awaitable[None]],
    knm_client: ApiClient, admin_headers: dict[str, str], tmp_path: Any, ssh_client: str,
) -> None:  # fmt: skip
    ca = asyncssh.generate_private_key("ssh-ed25519")
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    cert = ca.generate_host_certificate(host_key, "ca-node", principals=["127.0.0.9"])
    impostor = asyncssh.generate_private_key("ssh-ed25519")

    class Server(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, username: str, password: str) -> bool:
            return password == fleet.fleet.password

    async def handle(process: asyncssh.SSHServerProcess[str]) -> None:
        process.stdout.write("certified\n")
        process.exit(0)

    servers = [
        await asyncssh.create_server(
            Server, "127.0.0.9", 0, server_host_keys=[(host_key, cert)], process_factory=handle
        ),
        await asyncssh.create_server(
            Server, "127.0.0.10", 0, server_host_keys=[impostor], process_factory=handle
        ),
    ]
    try:
        ports = [server.sockets[0].getsockname()[1] for server in servers]
        nodes = [
            {"name": "signed", "address": "127.0.0.9", "port": ports[0]},
            {"name": "unsigned", "address": "127.0.0.10", "port": ports[1]},
        ]
        cluster = await create_fleet_cluster(
            knm_client, admin_headers, fleet.fleet, f"ca-lab-{ssh_client}", nodes=nodes
        )
        authority = {"public_key": ca.export_public_key().decode(), "clusters": [cluster]}
        response = await knm_client.put(
            "/features/automation/ssh",
            json={"cert_authorities": [authority]},
            headers=admin_headers,
        )
        assert_envelope(response, 200)
        await policy("strict")
        data = await knm_client.post(
            "/automation/ssh/execute",
            json={"cluster_name": cluster, "target_nodes": ["signed", "unsigned"],
                  "credential_id": fleet.credential_id, "command": "anything"},
            headers=admin_headers,
        )  # fmt: skip
        from knm.testing.tasks import wait_for_task

        status = await wait_for_task(
            knm_client, admin_headers, assert_envelope(data, 200)["data"]["task_id"]
        )
        results = by_node(status)
        assert results["signed"]["status"] == "success", results["signed"]
        assert results["signed"]["stdout"] == "certified\n"
        assert results["unsigned"]["reason"] == "host_key_unknown", results["unsigned"]
    finally:
        for server in servers:
            server.close()
            await server.wait_closed()
        await knm_client.put(
            "/features/automation/ssh", json={"cert_authorities": []}, headers=admin_headers
        )


async def test_off_accepts_any_key(
    run_ssh: Runner,
    fleet: FleetCluster,
    db: asyncpg.Connection,
    policy: Callable[[str], Awaitable[None]],
) -> None:
    await run_ssh(command="true", target_nodes=["node1"])
    await pin_other_key(db, fleet.cluster_name, "node1")
    await policy("off")
    status = await run_ssh(command="true", target_nodes=["node1"])
    assert status["results"][0]["status"] == "success"
    await db.execute(
        "DELETE FROM ssh_host_keys WHERE cluster_name = $1 AND node = 'node1'", fleet.cluster_name
    )


async def test_a_pin_of_another_key_type_is_still_host_key_changed(
    run_ssh: Runner, fleet: FleetCluster, db: asyncpg.Connection,
    knm_client: ApiClient, admin_headers: dict[str, str],
) -> None:  # fmt: skip
    await run_ssh(command="true", target_nodes=["node2"])
    await pin_other_key(db, fleet.cluster_name, "node2", "ecdsa-sha2-nistp256")
    status = await run_ssh(command="true", target_nodes=["node2"])
    assert status["results"][0]["reason"] == "host_key_changed", status["results"][0]
    await knm_client.delete(
        f"/automation/ssh/host-keys/{fleet.cluster_name}/node2", headers=admin_headers
    )


class CountingPool:
    """A pool that counts the queries the pin cache sends."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.queries = 0

    async def fetch(self, *args: Any) -> list[asyncpg.Record]:
        self.queries += 1
        return await self.conn.fetch(*args)

    async def fetchrow(self, *args: Any) -> asyncpg.Record | None:
        self.queries += 1
        return await self.conn.fetchrow(*args)


async def test_a_task_reads_its_clusters_pins_once_and_sees_the_pins_it_makes(
    db: asyncpg.Connection,
) -> None:
    import asyncio

    from knm.plugins.ssh.hostkeys import HostKeyCheck, PinCache, key_line, set_pin
    from knm.plugins.ssh.schemas import SshSettings

    # The module runs once per SSH client: start from no pins.
    await db.execute("DELETE FROM ssh_host_keys WHERE cluster_name = 'pin-cache'")
    known = asyncssh.generate_private_key("ssh-ed25519")
    await set_pin(db, "pin-cache", "a", known)
    pool = CountingPool(db)
    pins = PinCache(pool, "pin-cache")
    found = await asyncio.gather(*(pins.get(node) for node in ["a", "b", "a", "c"]))
    assert [p.public_key if p else None for p in found] == [key_line(known), None] * 2
    assert pool.queries == 1

    fresh = asyncssh.generate_private_key("ssh-ed25519")
    settings = SshSettings(host_key_policy="tofu")
    check = HostKeyCheck(pool, settings, "pin-cache", "b", "127.0.0.9", 22, pins)
    assert await check.known_hosts() is None
    await check.accept(fresh)  # first contact: pinned in the database and in the cache
    queries = pool.queries
    again = HostKeyCheck(pool, settings, "pin-cache", "b", "127.0.0.9", 22, pins)
    assert await again.matches(fresh) is True
    assert await again.matches(known) is False
    assert pool.queries == queries
    stored = await db.fetchval(
        "SELECT public_key FROM ssh_host_keys WHERE cluster_name = 'pin-cache' AND node = 'b'"
    )
    assert stored == key_line(fresh)
