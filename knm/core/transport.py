"""How knm reaches a node and runs a command there: the ``Transport`` contract.

A transport comes from the ``knm_transports`` hook; the core picks the one for a cluster with
``knm.registry.transport_for`` (SSH is the only one today: the ssh plugin serves it). Executors rarely touch a
transport directly: ``TaskContext.run_shell`` fans a command out through it with the engine's
batch, failure, timeout and cancel rules. A plugin needing more (Ansible's host keys and its
remote clean-up) uses the methods below, never the ssh plugin's modules.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import msgspec

from knm.core.sudo import sudo_command
from knm.core.tasks.schemas import NodeResult

if TYPE_CHECKING:
    from knm.core.clusters.provider import Node
    from knm.core.state import Knm

__all__ = [
    "HostKeys",
    "RunResult",
    "Transport",
    "TransportError",
    "node_result",
    "sudo_command",
]


class TransportError(Exception):
    """One node's failure: ``reason`` is the node result's reason (``unreachable``,
    ``auth_failed``, ``host_key_changed``, ``host_key_unknown``, ``connection_lost``,
    ``timeout``), ``message`` says what happened, never with a secret in it."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __repr__(self) -> str:
        return f"TransportError({self.reason!r}, {self.message!r})"


class RunResult(msgspec.Struct):
    #: None when the command was killed by a signal.
    exit_code: int | None
    #: The signal's name without "SIG" (``TERM``), when one killed the command.
    signal: str | None = None


class HostKeys(msgspec.Struct, kw_only=True):
    """The host keys a run of an external SSH client (Ansible's) must trust."""

    #: The transport's ``host_key_policy``: ``off``, ``tofu`` or ``strict``.
    policy: str
    #: known_hosts text ("" under ``off``).
    text: str = ""
    #: Nodes whose key was pinned before (a mismatch there is ``host_key_changed``).
    pinned: set[str] = msgspec.field(default_factory=set)


def node_result(result: RunResult) -> NodeResult:
    """The node's result of one command: success on exit code 0, else why not."""
    if result.signal is not None:
        return NodeResult.failure("signal", f"killed by signal {result.signal}")
    if result.exit_code:
        return NodeResult.failure(
            "exit_code", f"exit code {result.exit_code}", exit_code=result.exit_code
        )
    return NodeResult.success("exit code 0", exit_code=0)


@runtime_checkable
class Transport(Protocol):
    """A way to reach nodes. ``node`` is a resolved ``Node``; ``ctx`` the task's context."""

    #: The name ``knm.registry.transport_for`` picks it by (``ssh``).
    name: str

    def session(
        self, ctx: Any, node: Node, credential: Any, *, bastion: Any = None
    ) -> AbstractAsyncContextManager[Any]:
        """A connection to ``node`` for one or more ``run`` calls; raises ``TransportError``."""
        ...

    async def run(
        self,
        conn: Any,
        command: str,
        *,
        stdin: str | None = None,
        on_stdout: Callable[[str], Any] | None = None,
        on_stderr: Callable[[str], Any] | None = None,
        timeout: float | None = None,
        pty: bool = False,
        env: dict[str, str] | None = None,
    ) -> RunResult:
        """Runs ``command`` on the session's node; stdin is sent, then always closed."""
        ...

    async def concurrency(self, knm: Knm) -> int | None:
        """How many sessions may be open at once (None: no limit of its own)."""
        ...

    async def release_task(self, task_id: str) -> None:
        """Closes what the task kept open (bastion connections); called once its work is over."""
        ...

    async def host_keys(self, ctx: Any, nodes: Sequence[Node], jump: Any = None) -> HostKeys:
        """The keys an external SSH client must trust for ``nodes`` (and ``jump``, the
        cluster's bastion with its credential), by the transport's host key policy."""
        ...
