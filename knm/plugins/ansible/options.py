"""What a run request may pass to ansible-playbook: allow-listed ``extra_args``, ``extra_vars``.

``extra_args`` is parsed (shlex) and rebuilt from what was understood, so nothing a caller
writes reaches the command line unparsed. ``extra_vars`` may not touch ``ansible_*`` variables:
those choose the connection, the user, become and the interpreter, which are knm's to set.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

import msgspec

from knm.core.errors import Invalid
from knm.plugins.ansible.schemas import MAX_FORKS

_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Names Ansible sets itself; a value given for one would mislead the play.
_RESERVED_VARS = frozenset(
    {"hostvars", "groups", "group_names", "inventory_hostname", "inventory_hostname_short",
     "inventory_dir", "inventory_file", "playbook_dir", "play_hosts", "omit", "environment"}
)  # fmt: skip
_VALUE_FLAGS = {
    "--tags": "tags",
    "--skip-tags": "skip_tags",
    "--limit": "limit",
    "--forks": "forks",
}
_SWITCHES = {"--check": "check", "--diff": "diff"}
ALLOWED = "--check, --diff, --tags, --skip-tags, --limit, --forks, -v … -vvvv"


class RunOptions(msgspec.Struct, kw_only=True):
    check: bool = False
    diff: bool = False
    tags: str = ""
    skip_tags: str = ""
    limit: list[str] = msgspec.field(default_factory=list)
    verbosity: int = 0
    forks: int | None = None

    def argv(self) -> list[str]:
        """The options as ansible-playbook arguments (``--limit`` and forks are added apart)."""
        args: list[str] = []
        if self.check:
            args.append("--check")
        if self.diff:
            args.append("--diff")
        if self.tags:
            args += ["--tags", self.tags]
        if self.skip_tags:
            args += ["--skip-tags", self.skip_tags]
        if self.verbosity:
            args.append("-" + "v" * self.verbosity)
        return args


def _tag_list(flag: str, value: str) -> str:
    tags = [tag.strip() for tag in value.split(",")]
    if not all(tags) or any(tag.startswith("-") for tag in tags):
        raise Invalid(f"extra_args: {flag} takes a comma-separated list of tags")
    return ",".join(tags)


def parse_extra_args(text: str, targets: list[str]) -> RunOptions:
    """The allow-listed options in ``text``; 422 naming the first argument that is not."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise Invalid(f"extra_args cannot be parsed: {exc}") from None
    options = RunOptions()
    i = 0
    while i < len(words):
        word = words[i]
        flag, has_value, inline = word.partition("=")
        if re.fullmatch(r"-v{1,4}", word):
            options.verbosity = max(options.verbosity, len(word) - 1)
        elif word in _SWITCHES:
            setattr(options, _SWITCHES[word], True)
        elif flag in _VALUE_FLAGS:
            if has_value:
                value = inline
            elif i + 1 < len(words):
                i += 1
                value = words[i]
            else:
                raise Invalid(f"extra_args: {flag} needs a value")
            _set_value(options, flag, value, targets)
        else:
            raise Invalid(
                f"extra_args: {word!r} is not allowed; allowed are {ALLOWED}",
                message="extra_args not allowed",
            )
        i += 1
    return options


def _set_value(options: RunOptions, flag: str, value: str, targets: list[str]) -> None:
    if flag == "--forks":
        if not value.isdigit() or int(value) < 1:
            raise Invalid("extra_args: --forks takes a whole number of at least 1")
        options.forks = min(int(value), MAX_FORKS)
    elif flag == "--limit":
        names = [name.strip() for name in re.split(r"[,:]", value) if name.strip()]
        outside = [name for name in names if name not in targets]
        if not names or outside:
            raise Invalid(
                "extra_args: --limit must name target nodes only"
                + (f"; not targets: {', '.join(outside)}" if outside else "")
            )
        options.limit = names
    else:
        setattr(options, _VALUE_FLAGS[flag], _tag_list(flag, value))


def check_extra_vars(extra_vars: dict[str, Any]) -> None:
    """422 naming every variable a caller may not set."""
    bad = [name for name in extra_vars if not _VAR_NAME.fullmatch(name)]
    if bad:
        raise Invalid(f"extra_vars: not valid variable names: {', '.join(sorted(bad))}")
    forbidden = [
        name for name in extra_vars if name.lower().startswith("ansible_") or name in _RESERVED_VARS
    ]
    if forbidden:
        raise Invalid(
            "extra_vars may not set connection, become or Ansible's own variables: "
            + ", ".join(sorted(forbidden)),
            message="extra_vars not allowed",
        )
