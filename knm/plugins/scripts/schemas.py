"""Scripts plugin settings, the script kind's own fields and the execute request."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from knm.core.features import ExecutorSettings
from knm.core.tasks import ExecRequest

Language = Literal["shell", "python"]
#: What a request may give as a parameter value; numbers and booleans become text.
ParameterValue = str | int | float | bool


class ScriptsSettings(ExecutorSettings, kw_only=True, forbid_unknown_fields=True):
    """``max_concurrent``: simultaneous script sessions (they share the SSH session limit too)."""

    timeout: int = 300
    max_concurrent: int = 50


class ScriptParameter(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A declared parameter: it reaches the script as the environment variable ``name``.

    ``pattern`` is a regular expression the whole value must match; ``secret`` values are
    sealed with the task and masked in its output; ``required`` ones must be given unless
    they have a ``default``."""

    name: str
    description: str = ""
    default: str | None = None
    required: bool = False
    secret: bool = False
    pattern: str | None = None


class ScriptExtras(msgspec.Struct, kw_only=True):
    language: Language = "shell"
    parameters: list[ScriptParameter] = msgspec.field(default_factory=list)


class ScriptRequest(ExecRequest, kw_only=True, forbid_unknown_fields=True):
    """``POST /automation/scripts/execute``: a stored script run on every target node.

    Name the script by ``script_id`` or by ``script`` (its name, case-insensitive)."""

    script_id: int | None = None
    script: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    parameters: dict[str, ParameterValue] = msgspec.field(default_factory=dict)
    #: Run the script as root through ``sudo`` (the credential's password is fed on stdin).
    sudo: bool = False

    def shape_problems(self) -> list[str]:
        found = super().shape_problems()
        if (self.script_id is None) == (self.script is None):
            found.append("script_id: give either script_id or script (a script's name)")
        return found

    def problems(self) -> list[str]:
        found = super().problems()
        if self.script_id is not None and self.script_id <= 0:
            found.append("script_id must be greater than 0")
        return found
