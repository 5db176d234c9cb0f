"""A run's private data directory, as ansible-runner reads it, and the run's environment.

``run_dir`` (made by ``runner.make_dirs``, still knm's until ``runner.hand_over``)::

    project/main.yml                     the playbook
    project/shell_plugins/knm_sh.py      the shell plugin marking remote processes (remote.py)
    inventory/hosts.yml                  the nodes (no secrets)
    inventory/host_vars/localhost.yml    implicit localhost: temp files in the run dir
    inventory/group_vars/all.yml         a password (0600)
    keys/node, keys/bastion*             key files and the bastion's password (0600)
    env/ssh_key                          a key for ansible-runner's ssh-agent (0600)
    env/extravars, env/cmdline           extra_vars; the allow-listed arguments
    known_hosts                          the host keys ssh checks against
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from knm.core.tasks import TargetNode
from knm.core.transport import HostKeys
from knm.plugins.ansible import bastion, inventory, remote, runner
from knm.plugins.ansible.schemas import AnsibleSettings

if TYPE_CHECKING:
    from knm.plugins.ansible.toolchain import Toolchain


def ssh_args_for(keys: HostKeys, known_hosts_path: str) -> str:
    """ssh's options checking host keys against the run's ``known_hosts`` only (or not at all)."""
    if keys.policy == "off":
        return "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
    return (
        f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={known_hosts_path} "
        "-o GlobalKnownHostsFile=/dev/null"
    )


def lay_out(
    run_dir: Path,
    *,
    playbook: str,
    nodes: list[TargetNode],
    credential: Any,
    keys: HostKeys,
    jump: bastion.Jump | None,
    args: list[str],
    extra_vars: dict[str, Any],
    settings: AnsibleSettings,
    mark: str,
    tools: Toolchain | None = None,
) -> dict[str, str]:
    """Writes the run's files; returns the run's whole environment."""
    (run_dir / "project" / "main.yml").write_text(playbook)
    shell_plugins = run_dir / "project" / "shell_plugins"
    shell_plugins.mkdir(mode=0o700)
    (shell_plugins / f"{remote.SHELL_TYPE}.py").write_text(remote.SHELL_PLUGIN)
    built = inventory.build(nodes, credential)
    (run_dir / "inventory" / "hosts.yml").write_text(json.dumps(built.hosts, indent=1))
    # Implicit localhost is in no group: it takes host_vars/localhost, where its temp files stay
    # in the run dir (the run user's passwd home does not exist) and it gets knm's shell too.
    (run_dir / "inventory" / "host_vars").mkdir(mode=0o700)
    local_vars = {
        "ansible_remote_tmp": str(run_dir / "tmp" / "remote"),
        "ansible_shell_type": remote.SHELL_TYPE,
    }
    (run_dir / "inventory" / "host_vars" / "localhost.yml").write_text(json.dumps(local_vars))
    if built.secret_vars:
        (run_dir / "inventory" / "group_vars").mkdir(mode=0o700)
        runner.write_private(run_dir / "inventory" / "group_vars" / "all.yml", built.secret_vars)
    node_key = ""
    if built.key_file:
        node_key = str(run_dir / "keys" / "node")
        runner.write_private(Path(node_key), built.key_file)
    ssh_args = ssh_args_for(keys, str(run_dir / "known_hosts"))
    agent_key = built.agent_key
    if jump is not None:
        proxy = bastion.setup(jump, str(run_dir), node_key, ssh_args)
        for name, text in proxy.files.items():
            runner.write_private(run_dir / name, text)
        ssh_args = f"{ssh_args} {proxy.ssh_args}"
        # bastion.check made sure at most one of them needs the agent.
        agent_key = agent_key or proxy.agent_key
    if agent_key:
        runner.write_private(run_dir / "env" / "ssh_key", agent_key)
    runner.write_private(run_dir / "env" / "extravars", json.dumps(extra_vars))
    (run_dir / "env" / "cmdline").write_text(shlex.join(args))
    (run_dir / "known_hosts").write_text(keys.text)
    env = runner.environment(settings, run_dir, mark, tools)
    env["ANSIBLE_HOST_KEY_CHECKING"] = "False" if keys.policy == "off" else "True"
    env["ANSIBLE_SSH_COMMON_ARGS"] = ssh_args
    if node_key:
        env["ANSIBLE_PRIVATE_KEY_FILE"] = node_key
    return env
