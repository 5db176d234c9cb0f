"""Reaching a cluster's nodes through its bastion: an ssh ``ProxyCommand`` for Ansible.

Each node connection runs ``ssh -W %h:%p`` to the bastion (OpenSSH's ``ProxyJump`` would not
pass the run's host key options on to the jump connection). The bastion logs in with its own
credential (``Bastion.credential_id``) or, without one, with the task's. Its secret never
reaches a command line:

- a key the nodes use too: the same way (the run's key file, or ssh-agent);
- a key without a passphrase: a key file of its own (0600, the run user's, for the run's life);
- a key with a passphrase: ssh-agent, decrypted by knm — ansible-runner's agent holds one key,
  so this cannot work when the nodes' credential is a different passphrase-protected key (422);
- a password: ``sshpass -f`` reading a 0600 file of the run user's (422 without sshpass).

The bastion's host key follows the same policy as the nodes': pinned (as ``@bastion``, the SSH
plugin's name for it) into the run's ``known_hosts`` and checked strictly, or not at all
under ``off``.
"""

from __future__ import annotations

import shlex
import shutil
from typing import Any

import msgspec

from knm.core.errors import Invalid
from knm.plugins.ansible.inventory import unlocked_key

#: Run-directory paths of the bastion's secrets.
KEY_FILE = "keys/bastion"
PASSWORD_FILE = "keys/bastion_password"
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
    #: Secret files to write in the run directory (relative path → text), all 0600.
    files: dict[str, str] = msgspec.field(default_factory=dict)
    #: A key ssh-agent must hold for the bastion ("" when none).
    agent_key: str = ""


def uses_agent(credential: Any) -> bool:
    """Whether a node credential's key goes through ssh-agent (a passphrase protects it)."""
    return bool(credential.private_key and credential.passphrase)


def check(jump: Jump, node_credential: Any) -> None:
    """422 for the combinations an Ansible run cannot log in with."""
    credential = jump.credential
    if not credential.private_key and credential.password and shutil.which("sshpass") is None:
        raise Invalid(
            "the bastion's credential is a password, which Ansible's ssh can only send through "
            "sshpass, and sshpass is not installed on the knm host; install it or give the "
            "bastion a key credential"
        )
    if not credential.private_key and not credential.password:
        raise Invalid(f"the bastion's credential {credential.name} has no password or key")
    if not jump.shared and uses_agent(credential) and uses_agent(node_credential):
        raise Invalid(
            "the bastion's credential and the nodes' are different passphrase-protected keys; "
            "an Ansible run holds one key in ssh-agent, so give the bastion a key without a "
            "passphrase, a password, or the nodes' credential"
        )


def setup(jump: Jump, run_dir: str, node_key_file: str, host_key_args: str) -> JumpSetup:
    """How ssh reaches the bastion; ``node_key_file`` is the nodes' key file ("" without)."""
    credential = jump.credential
    files: dict[str, str] = {}
    agent_key = ""
    login = ["-o", f"ConnectTimeout={CONNECT_TIMEOUT}", "-o", "ControlPath=none"]
    prefix: list[str] = []
    if credential.private_key:
        login += ["-o", "BatchMode=yes", "-o", "PreferredAuthentications=publickey"]
        if jump.shared and node_key_file:
            login += ["-i", node_key_file]
        elif not jump.shared and not credential.passphrase:
            files[KEY_FILE] = unlocked_key(credential.private_key, None)
            login += ["-i", f"{run_dir}/{KEY_FILE}"]
        elif not jump.shared:
            agent_key = unlocked_key(credential.private_key, credential.passphrase)
        # else: the nodes' key, already in ssh-agent, whose socket the ProxyCommand inherits.
    else:
        files[PASSWORD_FILE] = credential.password + "\n"
        prefix = ["sshpass", "-f", f"{run_dir}/{PASSWORD_FILE}"]
        login += ["-o", "PreferredAuthentications=password,keyboard-interactive",
                  "-o", "PubkeyAuthentication=no", "-o", "NumberOfPasswordPrompts=1"]  # fmt: skip
    argv = [
        *prefix, "ssh", *shlex.split(host_key_args), *login,
        "-p", str(jump.port), "-l", credential.username, "-W", "%h:%p", jump.address,
    ]  # fmt: skip
    proxy = "ProxyCommand=" + shlex.join(argv)
    return JumpSetup(ssh_args=f"-o {shlex.quote(proxy)}", files=files, agent_key=agent_key)
