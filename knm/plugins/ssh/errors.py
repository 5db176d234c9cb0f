"""Why reaching or running on a node failed, in words an operator can act on."""

from __future__ import annotations


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
