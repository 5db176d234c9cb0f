"""A run's private data directory, as ansible-runner reads it, and the run's environment.

``run_dir`` (made by ``runner.make_dirs``, still knm's until ``runner.hand_over``)::

    project/main.yml                     the playbook
    project/shell_plugins/knm_sh.py      the shell plugin marking remote processes (remote.py)
    inventory/hosts.yml                  the nodes (no secrets)
    inventory/host_vars/localhost.yml    implicit localhost: temp files in the run dir
    env/extravars, env/cmdline           extra_vars; the allow-listed arguments
    env/passwords                        a FIFO: the password prompts' answers, read once
    project/knm_askpass                  the bastion's SSH_ASKPASS (no secret in it)
    agent/                               the run's ssh-agent and askpass sockets (0700)
    known_hosts                          the host keys ssh checks against

No secret is a file: keys are in the run's ssh-agent (``agent.py``), passwords are answered
through a pipe or a socket (``passwords.py``). ``Layout`` carries them to the executor, which
starts the agent and the answers around the run.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from knm.core.tasks import TargetNode
from knm.core.transport import HostKeys
from knm.plugins.ansible import agent, bastion, inventory, passwords, remote, runner
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


class Layout(msgspec.Struct, kw_only=True):
    """What a laid-out run needs besides its files: the environment and the secrets to serve."""

    env: dict[str, str]
    #: Unencrypted keys for the run's ssh-agent (the nodes', the bastion's).
    agent_keys: list[str] = msgspec.field(default_factory=list)
    #: The nodes' password, answering ``--ask-pass``/``--ask-become-pass``; "" when none.
    password: str = ""
    #: The bastion's password, answered on ``askpass_socket``; "" when none.
    bastion_password: str = ""
    askpass_socket: str = ""

    def __repr__(self) -> str:
        return "Layout(<secrets hidden>)"


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
) -> Layout:
    """Writes the run's files (none of them secret); returns the environment and secrets."""
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
    laid = Layout(env={}, password=built.password)
    if built.agent_key:
        laid.agent_keys.append(built.agent_key)
    ssh_args = ssh_args_for(keys, str(run_dir / "known_hosts"))
    socket_dir = agent.socket_dir(run_dir)
    if jump is not None:
        laid.askpass_socket = str(socket_dir / "askpass.sock")
        proxy = bastion.setup(jump, str(run_dir), ssh_args, laid.askpass_socket)
        ssh_args = f"{ssh_args} {proxy.ssh_args}"
        if proxy.agent_key:
            laid.agent_keys.append(proxy.agent_key)
        if proxy.password:
            laid.bastion_password = proxy.password
            script = run_dir / passwords.ASKPASS_PROGRAM
            script.write_text(passwords.askpass_script(_python(settings, tools)))
            os.chmod(script, 0o700)
    if built.password:
        # ansible-playbook asks; ansible-runner answers from env/passwords (a FIFO).
        args = [*args, "--ask-pass", "--ask-become-pass"]
    runner.write_private(run_dir / "env" / "extravars", json.dumps(extra_vars))
    (run_dir / "env" / "cmdline").write_text(shlex.join(args))
    (run_dir / "known_hosts").write_text(keys.text)
    env = runner.environment(settings, run_dir, mark, tools)
    env["ANSIBLE_HOST_KEY_CHECKING"] = "False" if keys.policy == "off" else "True"
    env["ANSIBLE_SSH_COMMON_ARGS"] = ssh_args
    if laid.agent_keys:
        env["SSH_AUTH_SOCK"] = str(socket_dir / "agent.sock")
    laid.env = env
    return laid


def _python(settings: AnsibleSettings, tools: Toolchain | None) -> str:
    return runner._tools(settings, tools).python
