"""``knm hostkey list|pin|forget`` against a real server: pins listed by cluster and node, a key
pinned by hand (from the option or a file), a forgotten pin gone, and wrong keys refused before
any request with the option named."""

from __future__ import annotations

import itertools
from pathlib import Path

import asyncssh

from knm.client import Client

from .conftest import Knm

_names = itertools.count(1)


def public_key() -> str:
    return asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()


def cluster_name() -> str:
    return f"pins-{next(_names)}"


def test_list_shows_the_pins_of_a_cluster_and_of_one_node(knm: Knm, admin: Client) -> None:
    cluster, other = cluster_name(), cluster_name()
    for node in ("n1", "n2"):
        admin.ssh.pin_host_key(cluster, node, public_key())
    admin.ssh.pin_host_key(other, "n1", public_key())

    listed = knm("hostkey", "list", "--cluster", cluster, "--json")
    assert listed.code == 0, listed.err
    body = listed.json()
    assert body["total"] == 2
    assert [(p["cluster_name"], p["node"]) for p in body["host_keys"]] == [
        (cluster, "n1"),
        (cluster, "n2"),
    ]
    assert body["host_keys"][0]["fingerprint"].startswith("SHA256:")

    one = knm("hostkey", "list", "--cluster", cluster, "--node", "n2", "--json").json()
    assert one["total"] == 1 and one["host_keys"][0]["node"] == "n2"
    everywhere = knm("hostkey", "list", "--node", "n1", "--json").json()
    assert {(cluster, "n1"), (other, "n1")} <= {
        (p["cluster_name"], p["node"]) for p in everywhere["host_keys"]
    }

    table = knm("hostkey", "list", "--cluster", cluster)
    assert table.code == 0, table.err
    assert "FINGERPRINT" in table.out and "n2" in table.out
    assert "2 of 2" in table.err  # into a pipe, the count is not a row


def test_pin_takes_the_key_from_the_option_or_a_file_and_replaces_the_pin(
    knm: Knm, tmp_path: Path
) -> None:
    cluster = cluster_name()
    first = public_key()
    pinned = knm("hostkey", "pin", cluster, "n1", "--key", first)
    assert pinned.code == 0, pinned.err
    assert pinned.out.startswith("pinned ssh-ed25519 SHA256:") and cluster in pinned.out

    second = public_key()
    key_file = tmp_path / "n1.pub"
    key_file.write_text(second + " root@n1\n")
    again = knm("hostkey", "pin", cluster, "n1", "--key-file", str(key_file), "--json")
    assert again.code == 0, again.err
    assert again.json()["public_key"] == second
    from_stdin = knm("hostkey", "pin", cluster, "n1", "--key-file", "-", stdin=first + "\n")
    assert from_stdin.code == 0, from_stdin.err
    listed = knm("hostkey", "list", "--cluster", cluster, "--json").json()
    assert [p["public_key"] for p in listed["host_keys"]] == [first]


def test_a_key_that_is_not_one_ssh_public_key_line_is_refused_naming_the_option(
    knm: Knm, tmp_path: Path
) -> None:
    cluster = cluster_name()
    kind, data = public_key().split()
    cut = knm("hostkey", "pin", cluster, "n1", "--key", f"{kind} {data[:20]}")
    assert cut.code == 2
    assert cut.err.startswith("knm: --key: ") and "cut short" in cut.err
    swapped = knm("hostkey", "pin", cluster, "n1", "--key", f"ssh-rsa {data}")
    assert swapped.code == 2 and "not a ssh-rsa key" in swapped.err
    alone = knm("hostkey", "pin", cluster, "n1", "--key", data)
    assert alone.code == 2 and "TYPE BASE64" in alone.err
    assert knm("hostkey", "pin", cluster, "n1").code == 2
    two = tmp_path / "two.pub"
    two.write_text(f"{public_key()}\n{public_key()}\n")
    many = knm("hostkey", "pin", cluster, "n1", "--key-file", str(two))
    assert many.code == 2 and "found 2" in many.err
    assert knm("hostkey", "list", "--cluster", cluster, "--json").json()["total"] == 0


def test_forget_removes_the_pin_and_a_missing_pin_exits_4(knm: Knm, admin: Client) -> None:
    cluster = cluster_name()
    admin.ssh.pin_host_key(cluster, "n1", public_key())
    forgot = knm("hostkey", "forget", cluster, "n1")
    assert forgot.code == 0, forgot.err
    assert "forgot the host key of n1" in forgot.out
    assert knm("hostkey", "list", "--cluster", cluster, "--json").json()["total"] == 0

    again = knm("hostkey", "forget", cluster, "n1", "--json")
    assert again.code == 4
    assert again.json()["code"] == 404 and "no host key pinned for node n1" in again.err


def test_forget_prints_what_it_forgot_as_json(knm: Knm, admin: Client) -> None:
    cluster = cluster_name()
    admin.ssh.pin_host_key(cluster, "@bastion", public_key())
    forgot = knm("hostkey", "forget", cluster, "@bastion", "--json")
    assert forgot.code == 0, forgot.err
    assert forgot.json() == {"forgotten": {"cluster_name": cluster, "node": "@bastion"}}
