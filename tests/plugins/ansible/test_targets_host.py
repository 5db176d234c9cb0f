"""Plays that would run on the knm host are found however they are written."""

from __future__ import annotations

import pytest

from knm.plugins.ansible.targets_host import is_local_name, refusals

TASK = "    - ansible.builtin.command: id\n"


def play(head: str, tasks: str = TASK) -> str:
    return f"- {head}\n  gather_facts: false\n  tasks:\n{tasks}"


REFUSED = {
    "hosts localhost": play("hosts: localhost"),
    "hosts 127.0.0.1": play("hosts: 127.0.0.1"),
    "hosts 127.1": play("hosts: '127.1'"),
    "hosts ::1": play("hosts: '::1'"),
    "hosts in a list": play("hosts: [node1, localhost]"),
    "hosts in a pattern": play("hosts: 'all:localhost'"),
    "hosts in a comma list": play("hosts: 'node1,LOCALHOST'"),
    "hosts templated": play("hosts: '{{ target }}'"),
    "play connection local": play("hosts: all\n  connection: local"),
    "builtin connection local": play("hosts: all\n  connection: ansible.builtin.local"),
    "task connection local": play("hosts: all", "    - command: id\n      connection: local\n"),
    "play vars ansible_connection": play("hosts: all\n  vars:\n    ansible_connection: local"),
    "set_fact ansible_connection": play(
        "hosts: all", "    - set_fact:\n        ansible_connection: local\n"
    ),
    "add_host free form": play("hosts: all", "    - add_host: name=x ansible_connection=local\n"),
    "ansible_host loopback": play("hosts: all\n  vars:\n    ansible_host: 127.0.0.1"),
    "delegate_to localhost": play(
        "hosts: all", "    - command: id\n      delegate_to: localhost\n"
    ),
    "delegate_to 127.0.0.1 run_once": play(
        "hosts: all", "    - command: id\n      run_once: true\n      delegate_to: 127.0.0.1\n"
    ),
    "delegate_to templated": play(
        "hosts: all", "    - command: id\n      delegate_to: '{{ there }}'\n"
    ),
    "local_action": play("hosts: all", "    - local_action: command id\n"),
    "local_action in a block": play(
        "hosts: all",
        "    - block:\n        - name: inner\n          local_action:\n"
        "            module: ansible.builtin.command\n            cmd: id\n",
    ),
    "delegate_to in a handler": (
        "- hosts: all\n  tasks:\n"
        + TASK
        + "  handlers:\n    - name: h\n      command: id\n      delegate_to: localhost\n"
    ),
    "pipe lookup": play(
        "hosts: all", "    - debug:\n        msg: \"{{ lookup('pipe', 'cat /etc/shadow') }}\"\n"
    ),
    "builtin lines query": play(
        "hosts: all", "    - debug:\n        msg: \"{{ query('ansible.builtin.lines', 'id') }}\"\n"
    ),
    "a ProxyCommand through ssh args": play(
        "hosts: all\n  vars:\n    ansible_ssh_common_args: -o ProxyCommand='sh -c id'"
    ),
    "ssh executable in set_fact": play(
        "hosts: all", "    - set_fact: ansible_ssh_executable=/tmp/x\n"
    ),
    "unsafe tagged connection": play("hosts: all\n  connection: !unsafe local"),
    "unsafe tagged delegate_to": play(
        "hosts: all", "    - command: id\n      delegate_to: !unsafe localhost\n"
    ),
    "with_pipe": play("hosts: all", "    - debug: msg={{ item }}\n      with_pipe: id\n"),
}

ALLOWED = {
    "hosts all": play("hosts: all"),
    "hosts a group": play("hosts: 'control_plane:!node2'"),
    "delegate_to a node": play("hosts: all", "    - command: id\n      delegate_to: node1\n"),
    "connection ssh": play("hosts: all\n  connection: ssh"),
    "file lookup is not a command": play(
        "hosts: all", "    - debug:\n        msg: \"{{ lookup('env', 'HOME') }}\"\n"
    ),
    "a word like localhostname": play("hosts: all", "    - command: echo localhost\n"),
}


@pytest.mark.parametrize("content", REFUSED.values(), ids=REFUSED.keys())
def test_every_way_to_run_on_the_knm_host_is_refused_with_a_reason(content: str) -> None:
    found = refusals(content)
    assert found, content
    assert all("allow_local_plays" in reason for reason in found)
    assert found[0].startswith("play ")


@pytest.mark.parametrize("content", ALLOWED.values(), ids=ALLOWED.keys())
def test_plays_on_the_nodes_are_not_refused(content: str) -> None:
    assert refusals(content) == []


def test_the_admin_setting_allows_local_plays() -> None:
    assert refusals(REFUSED["hosts localhost"], allowed=True) == []


@pytest.mark.parametrize(
    ("name", "local"),
    [("localhost", True), ("127.0.0.53", True), ("[::1]", True), ("0.0.0.0", True),
     ("2130706433", True), ("10.0.0.1", False), ("node1", False), ("all", False)],
)  # fmt: skip
def test_loopback_names_and_addresses_are_the_knm_host(name: str, local: bool) -> None:
    assert is_local_name(name) is local
