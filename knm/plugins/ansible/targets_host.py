"""Plays that would run on the knm host itself, refused unless an admin allows them.

A play runs on the knm host (as the run user, beside the run's ssh-agent and knm's files) when
it targets the implicit ``localhost`` (``hosts: localhost``, ``127.0.0.1``, ``::1``, any
loopback address), runs with a local connection (``connection: local``, ``ansible_connection``
set to ``local`` anywhere, ``add_host`` included), delegates there (``delegate_to`` a loopback
name, ``local_action``, ``run_once`` with either), points a host at a loopback address
(``ansible_host``), runs commands on the controller through lookups (``pipe``, ``lines``,
``with_pipe``, ``with_lines``), or sets the ssh options and programs the controller runs
(``ansible_ssh_common_args``/``_extra_args``/``_executable``, ``ansible_scp_extra_args`` …,
where a ``ProxyCommand`` or ``LocalCommand`` is a command on the knm host).

Where the value is a template (``{{ … }}``), what it becomes is unknown when the playbook is
saved, and may be chosen by whoever runs it: a templated ``hosts``, ``delegate_to``,
``connection``, ``ansible_connection`` or ``ansible_host`` is refused too. Use literal names,
or turn on the Ansible setting ``allow_local_plays`` (admins only).

``refusals`` runs where a playbook is saved (422 with the reasons) and again on the pinned
body when a run is requested and when it starts, with the setting as it is then.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Any

import yaml

#: Names Ansible resolves to its implicit localhost, and common aliases of it.
_LOCAL_NAMES = frozenset(
    {"localhost", "localhost.localdomain", "localhost4", "localhost6", "ip6-localhost",
     "ip6-loopback"}
)  # fmt: skip
_LOCAL_CONNECTIONS = frozenset({"local", "ansible.builtin.local", "ansible.legacy.local"})
_LOCAL_ACTION = frozenset({"local_action", "ansible.builtin.local_action"})
_CONTROLLER_LOOPS = frozenset({"with_pipe", "with_lines"})
_CONNECTION_KEYS = frozenset({"connection", "ansible_connection"})
_HOST_KEYS = frozenset({"ansible_host", "ansible_ssh_host"})
#: Variables whose value the controller's ssh runs or passes on as options.
_CONTROLLER_VARS = frozenset(
    {"ansible_ssh_common_args", "ansible_ssh_extra_args", "ansible_ssh_args",
     "ansible_sftp_extra_args", "ansible_scp_extra_args", "ansible_ssh_executable",
     "ansible_sftp_executable", "ansible_scp_executable", "ansible_ssh_askpass"}
)  # fmt: skip
_CONTROLLER_LOOKUP = re.compile(
    r"\b(?:lookup|query|q)\s*\(\s*['\"](?:ansible\.(?:builtin|legacy)\.)?(?:pipe|lines)['\"]"
)
_FREE_FORM = re.compile(
    r"\b(ansible_connection|ansible_host|ansible_ssh_host|connection)\s*=\s*(\S+)"
)
_FREE_FORM_CONTROLLER = re.compile(
    r"\b(ansible_(?:ssh_common_args|ssh_extra_args|ssh_args|sftp_extra_args|scp_extra_args"
    r"|ssh_executable|sftp_executable|scp_executable|ssh_askpass))\s*="
)
_SETTING = "turn on the Ansible setting allow_local_plays (admins only) to allow it"


def is_local_name(name: str) -> bool:
    """Whether ``name`` (a host pattern part) means the knm host itself."""
    text = name.strip().strip("[]").lower()
    if text in _LOCAL_NAMES:
        return True
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        try:
            # The shorthand forms the C resolver accepts: 127.1, 2130706433, 0x7f.1.
            address = ipaddress.ip_address(socket.inet_aton(text))
        except (OSError, ValueError):
            return False
    return address.is_loopback or address.is_unspecified


def _templated(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _pattern_parts(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    parts: list[str] = []
    for item in items:
        for part in str(item).split(","):
            part = part.strip().lstrip("!&")
            parts.append(part)
            parts.extend(piece.lstrip("!&") for piece in part.split(":"))
    return parts


class _Walk:
    def __init__(self) -> None:
        self.found: list[str] = []

    def refuse(self, where: str, why: str) -> None:
        self.found.append(f"{where}: {why}")

    def play(self, where: str, play: dict[str, Any]) -> None:
        if "hosts" in play:
            hosts = play["hosts"]
            if _templated(hosts) or (isinstance(hosts, list) and any(map(_templated, hosts))):
                self.refuse(where, f"hosts is a template ({hosts!r}), which may name localhost")
            elif any(is_local_name(part) for part in _pattern_parts(hosts)):
                self.refuse(where, f"hosts {hosts!r} targets the knm host")
        self.node(where, play)

    def node(self, where: str, value: Any) -> None:
        """Every mapping and string below a play, wherever it sits (tasks, blocks, vars,
        module arguments, roles' parameters)."""
        if isinstance(value, dict):
            self.mapping(where, value)
        elif isinstance(value, list):
            for item in value:
                self.node(where, item)
        elif isinstance(value, str):
            self.text(where, value)

    def mapping(self, where: str, mapping: dict[str, Any]) -> None:
        # ``where`` stays the play; a named task or block adds its name for this level only.
        name = mapping.get("name")
        here = f"{where}, {name!r}" if isinstance(name, str) else where
        for key, value in mapping.items():
            key_text = str(key)
            if key_text in _LOCAL_ACTION:
                self.refuse(here, f"{key_text} runs on the knm host")
            elif key_text == "delegate_to":
                if _templated(value):
                    self.refuse(
                        here, f"delegate_to is a template ({value!r}), which may be localhost"
                    )
                elif is_local_name(str(value)):
                    self.refuse(here, f"delegate_to {value!r} runs on the knm host")
            elif key_text in _CONNECTION_KEYS:
                self.connection(here, key_text, value)
            elif key_text in _HOST_KEYS:
                self.host(here, key_text, value)
            elif key_text in _CONTROLLER_LOOPS:
                self.refuse(here, f"{key_text} runs commands on the knm host")
            elif key_text in _CONTROLLER_VARS:
                self.refuse(here, f"{key_text} is run or passed on by ssh on the knm host")
            self.node(where, value)

    def connection(self, where: str, key: str, value: Any) -> None:
        if _templated(value):
            self.refuse(where, f"{key} is a template ({value!r}), which may be local")
        elif str(value).strip().lower() in _LOCAL_CONNECTIONS:
            self.refuse(where, f"{key}: {value} runs on the knm host")

    def host(self, where: str, key: str, value: Any) -> None:
        if _templated(value):
            self.refuse(where, f"{key} is a template ({value!r}), which may be the knm host")
        elif is_local_name(str(value)):
            self.refuse(where, f"{key} {value!r} points at the knm host")

    def text(self, where: str, text: str) -> None:
        if _CONTROLLER_LOOKUP.search(text):
            self.refuse(where, "a pipe or lines lookup runs commands on the knm host")
        for match in _FREE_FORM_CONTROLLER.finditer(text):
            self.refuse(where, f"{match.group(1)} is run or passed on by ssh on the knm host")
        for match in _FREE_FORM.finditer(text):
            key, value = match.group(1), match.group(2).strip("'\"")
            if key in _CONNECTION_KEYS:
                self.connection(where, key, value)
            else:
                self.host(where, key, value)


class _TaggedLoader(yaml.SafeLoader):
    """A safe loader that reads Ansible's tags (``!unsafe``, ``!vault``) as the plain value
    they tag, so ``connection: !unsafe local`` is seen as ``local``."""


def _untagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)  # type: ignore[arg-type]


_TaggedLoader.add_multi_constructor("!", _untagged)


def refusals(content: str, allowed: bool = False) -> list[str]:
    """Why ``content`` would run on the knm host, one sentence each; none when ``allowed``
    (the setting ``allow_local_plays``) or when it does not parse (the structure check says
    why)."""
    if allowed:
        return []
    try:
        plays = yaml.load(content, Loader=_TaggedLoader)
    except yaml.YAMLError:
        return [f"the playbook is not valid YAML, so where it runs cannot be checked; {_SETTING}"]
    if not isinstance(plays, list):
        return []
    walk = _Walk()
    for number, play in enumerate(plays, 1):
        if isinstance(play, dict):
            walk.play(f"play {number}", play)
    return [f"{reason}; {_SETTING}" for reason in dict.fromkeys(walk.found)]


def check(content: str, allowed: bool) -> None:
    """422 naming every way ``content`` would run on the knm host (unless ``allowed``)."""
    found = refusals(content, allowed)
    if found:
        from knm.core.errors import Invalid

        raise Invalid("; ".join(found), message="playbook targets the knm host")
