"""Reaching a cluster's nodes through its bastion: an ssh ``ProxyCommand`` for Ansible.

Each node connection runs ``ssh -W %h:%p`` to the bastion (OpenSSH's ``ProxyJump`` would not
pass the run's host key options on to the jump connection). The bastion logs in with its own
credential (``Bastion.credential_id``) or, without one, with the task's. Its secret never
reaches a command line, an environment or a file:

- a key (decrypted by knm when it has a passphrase): the run's own ssh-agent, beside the nodes'
  key (``agent.py``), whose socket the ProxyCommand inherits;
- a password: ``SSH_ASKPASS`` (forced), a script of the run's that reads it from a Unix socket
  knm serves to the run user for the run's length (``passwords.py``).

The bastion's host key follows the same policy as the nodes': pinned (as ``@bastion``, the SSH
plugin's name for it) into the run's ``known_hosts`` and checked strictly, or not at all
under ``off``.
"""

from __future__ import annotations

import shlex
from typing import Any

import msgspec

from knm.core.errors import Invalid
from knm.plugins.ansible.inventory import unlocked_key
from knm.plugins.ansible.passwords import ASKPASS_PROGRAM, ASKPASS_SOCKET_ENV

CONNECT_TIMEOUT = 10


class Jump(msgspec.Struct, kw_only=True):
    """A cluster's bastion with the credential it logs in with."""

    address: str
    port: int
    credential: Any
    #: The task's own credential (the nodes log in with the same secret).
    shared: bool


class JumpSetup(msgspec.Struct, kw_only=True):
    #: ``-o ProxyCommand=…`` for ``ANSIBLE_SSH_COMMON_ARGS``.
    ssh_args: str
    #: A key the run's ssh-agent must hold for the bastion ("" when none).
    agent_key: str = ""
    #: The password the askpass socket answers ("" when none).
    password: str = ""

    def __repr__(self) -> str:
        return f"JumpSetup(ssh_args={self.ssh_args!r}, <secrets hidden>)"


def check(jump: Jump, node_credential: Any) -> None:
    """422 for a bastion credential an Ansible run cannot log in with."""
    credential = jump.credential
    if not credential.private_key and not credential.password:
        raise Invalid(f"the bastion's credential {credential.name} has no password or key")


def setup(jump: Jump, run_dir: str, host_key_args: str, askpass_socket: str) -> JumpSetup:
    """How ssh reaches the bastion; ``askpass_socket`` is where a password is served."""
    credential = jump.credential
    agent_key = password = ""
    login = ["-o", f"ConnectTimeout={CONNECT_TIMEOUT}", "-o", "ControlPath=none"]
    prefix: list[str] = []
    if credential.private_key:
        login += ["-o", "BatchMode=yes", "-o", "PreferredAuthentications=publickey"]
        if not jump.shared:
            agent_key = unlocked_key(credential.private_key, credential.passphrase)
        # else: the nodes' key, already in the run's ssh-agent.
    else:
        password = credential.password
        prefix = ["env", f"SSH_ASKPASS={run_dir}/{ASKPASS_PROGRAM}", "SSH_ASKPASS_REQUIRE=force",
                  f"{ASKPASS_SOCKET_ENV}={askpass_socket}"]  # fmt: skip
        login += ["-o", "PreferredAuthentications=password,keyboard-interactive",
                  "-o", "PubkeyAuthentication=no", "-o", "NumberOfPasswordPrompts=1"]  # fmt: skip
    argv = [
        *prefix, "ssh", *shlex.split(host_key_args), *login,
        "-p", str(jump.port), "-l", credential.username, "-W", "%h:%p", jump.address,
    ]  # fmt: skip
    proxy = "ProxyCommand=" + shlex.join(argv)
    return JumpSetup(ssh_args=f"-o {shlex.quote(proxy)}", agent_key=agent_key, password=password)
