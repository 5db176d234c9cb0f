"""The dangerous-command policy every executor consults before running shell on nodes.

This is a guard-rail, not a sandbox: it stops the classic node-destroying mistakes
(``rm -rf /``, ``mkfs`` on a disk, a fork bomb, ``dd`` onto ``/dev/sda`` ...) wherever they
hide in a command line -- pipelines, lists, subshells, ``$(...)``, ``sh -c``, ``eval``,
``xargs``, ``find -exec``, behind ``sudo``/``env``/``timeout`` and friends. A determined
user with a shell can always get around it (variables, scripts on disk, other languages);
real isolation belongs to RBAC and the node itself.

Decisions worth knowing:

* Recursive removal of ``/``, a top-level system directory or the home directory is blocked
  with or without ``-f``: executors are non-interactive, so ``rm -r`` never asks anyway.
* Quoted data is data: ``echo "rm -rf /"`` and ``grep -r "mkfs" .`` pass, while
  ``bash -c "rm -rf /"`` and ``echo "rm -rf /" | sh`` are blocked.
* ``wipefs`` without an erase option only lists signatures and is allowed; ``mkswap`` is
  only blocked on a block device (swap files are routine).
* Admins may skip a built-in rule by name (``allowed``) and add site rules (``extra_rules``).

``check(knm, command, context)`` is the one way anything that runs shell on nodes applies the
policy: the built-in rules, the site's rules (the SSH settings' ``deny_rules``/``allow_rules``)
and every plugin's ``knm_check_command``, told who asks in a ``CommandContext``. The ssh and
scripts executors, workflow steps and third-party plugins all call it; none re-implements it.
"""

from __future__ import annotations

import asyncio
import fnmatch
import functools
import posixpath
import re
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import TYPE_CHECKING

import msgspec

from knm.core.shellparse import Command, analyze, find_exec_commands, unwrap

if TYPE_CHECKING:
    from knm.core.state import Knm

__all__ = [
    "BUILTIN_RULES",
    "CommandContext",
    "DenyRule",
    "Violation",
    "check",
    "check_command",
    "check_script",
    "violations",
]


class DenyRule(msgspec.Struct, frozen=True):
    """A site rule: `pattern` is searched in each simple command, words joined by spaces."""

    name: str
    pattern: str
    description: str = ""


class Violation(msgspec.Struct, frozen=True):
    rule: str
    matched: str

    def __str__(self) -> str:
        return self.matched

    @property
    def message(self) -> str:
        return f"dangerous command blocked: {self.matched}"


class CommandContext(msgspec.Struct, kw_only=True):
    """What ``knm_check_command`` implementations are told about who asks, and where."""

    #: The executor or step type running the command (``ssh``, ``script``, ``workflow`` …).
    kind: str
    cluster_name: str
    username: str | None = None
    role: str | None = None
    sudo: bool = False


SYSTEM_DIRS = frozenset(
    {"bin", "boot", "dev", "etc", "home", "lib", "lib32", "lib64", "opt", "proc", "root",
     "sbin", "srv", "sys", "usr", "var"}
)  # fmt: skip
_BLOCK_DEVICE = re.compile(
    r"^/dev/(?:(?:sd|hd|vd|xvd)[a-z]|nvme\d|mmcblk\d|dm-\d|md\d|loop\d|mapper/|disk/|root$)"
)
_HOME = re.compile(r"^(?:~[\w.-]*|\$HOME|\$\{HOME\})(?:/+[*.]?)?$")
_BRACES = re.compile(r"\{([^{}]*,[^{}]*)\}")
_WRITE_REDIRECTS = frozenset({">", ">>", ">|", "&>", "&>>", ">&", "<>"})


# --- targets ------------------------------------------------------------------------------


def _brace_expand(word: str, limit: int = 64) -> list[str]:
    match = _BRACES.search(word)
    if match is None:
        return [word]
    head, tail = word[: match.start()], word[match.end() :]
    results: list[str] = []
    for option in match.group(1).split(","):
        results.extend(_brace_expand(head + option + tail, limit))
        if len(results) >= limit:
            break
    return results[:limit]


def _system_path(word: str) -> str | None:
    """`word` as "/" or "/<top-level system dir>" if it names one, else None."""
    for candidate in _brace_expand(word):
        if not candidate.startswith("/"):
            continue
        path = candidate[:-2] or "/" if candidate.endswith("/*") else candidate
        path = "/" + posixpath.normpath(path).lstrip("/")
        if path == "/":
            return "/"
        name = path[1:]
        if "/" in name:
            continue
        if name in SYSTEM_DIRS or (
            any(c in name for c in "*?[") and fnmatch.filter(SYSTEM_DIRS, name)
        ):
            return path
    return None


def _home_path(word: str) -> bool:
    return any(_HOME.match(candidate) for candidate in _brace_expand(word))


def _critical(word: str) -> bool:
    return _system_path(word) is not None or _home_path(word)


def _is_block_device(word: str) -> bool:
    if not word.startswith("/dev/"):
        return False
    return bool(_BLOCK_DEVICE.match("/" + posixpath.normpath(word).lstrip("/")))


def _split_options(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """(options, operands); GNU tools accept options after operands, so do we."""
    options: list[str] = []
    operands: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--":
            operands.extend(args[i + 1 :])
            break
        (options if arg.startswith("-") and len(arg) > 1 else operands).append(arg)
    return options, operands


def _has_flag(options: Sequence[str], short: str, long: str) -> bool:
    for option in options:
        if option.startswith("--"):
            name = option[2:].partition("=")[0]
            if name and long.startswith(name):  # getopt accepts unambiguous prefixes
                return True
        elif any(c in option[1:] for c in short):
            return True
    return False


# --- built-in rules -----------------------------------------------------------------------
# Each check takes the unwrapped words of one command and returns the offending text or None.


def _recursive_rm(words: Sequence[str], target: Callable[[str], bool]) -> bool:
    options, operands = _split_options(words[1:])
    return _has_flag(options, "rR", "recursive") and any(target(w) for w in operands)


def _rm_root(words: Sequence[str]) -> bool:
    return words[0] == "rm" and _recursive_rm(words, lambda w: _system_path(w) is not None)


def _rm_home(words: Sequence[str]) -> bool:
    return words[0] == "rm" and _recursive_rm(words, _home_path)


def _mkfs(words: Sequence[str]) -> bool:
    program = words[0]
    if program == "mkswap":
        return any(_is_block_device(w) for w in words[1:])
    if program in ("mkfs", "mke2fs") or program.startswith("mkfs."):
        return not (words[1:] and set(words[1:]) <= {"--help", "--version"})
    return False


def _wipe(words: Sequence[str]) -> bool:
    options, operands = _split_options(words[1:])
    if words[0] == "wipefs":
        erases = _has_flag(options, "ao", "all") or _has_flag(options, "", "offset")
        return erases and not _has_flag(options, "n", "no-act")
    if words[0] in ("blkdiscard", "sgdisk"):
        if words[0] == "sgdisk" and not _has_flag(options, "Zo", "zap-all"):
            return False
        return any(_is_block_device(w) for w in operands)
    return False


def _shred(words: Sequence[str]) -> bool:
    return words[0] == "shred" and any(_is_block_device(w) for w in words[1:])


def _dd(words: Sequence[str]) -> bool:
    return words[0] == "dd" and any(
        w.startswith("of=") and _is_block_device(w[3:]) for w in words[1:]
    )


def _tee_or_cp_to_device(words: Sequence[str]) -> bool:
    _, operands = _split_options(words[1:])
    if words[0] == "tee":
        return any(_is_block_device(w) for w in operands)
    if words[0] == "cp" and len(operands) >= 2:
        return _is_block_device(operands[-1])
    return False


def _recursive_mode(programs: tuple[str, ...]) -> Callable[[Sequence[str]], bool]:
    def check(words: Sequence[str]) -> bool:
        if words[0] not in programs:
            return False
        options, operands = _split_options(words[1:])
        # chmod -r means "remove read permission", so only -R counts as recursive.
        return _has_flag(options, "R", "recursive") and any(_critical(w) for w in operands)

    return check


def _find_delete(words: Sequence[str]) -> bool:
    if words[0] != "find":
        return False
    args = list(words[1:])
    while args and (args[0] in ("-H", "-L", "-P") or args[0].startswith(("-O", "-D"))):
        args = args[2:] if args[0] == "-D" else args[1:]
    starts = []
    for arg in args:
        if arg.startswith("-") or arg in ("(", "!", ","):
            break
        starts.append(arg)
    if not any(_critical(s) for s in starts):
        return False
    if "-delete" in args:
        return True
    return any(
        (inner := unwrap(cmd)) and inner[0] in ("rm", "shred", "unlink")
        for cmd in find_exec_commands(args)
    )


def _move_system_dir(words: Sequence[str]) -> bool:
    if words[0] != "mv":
        return False
    options, operands = _split_options(words[1:])
    sources = operands if _has_flag(options, "t", "target-directory") else operands[:-1]
    return any(_system_path(w) is not None for w in sources)


_WORD_RULES: dict[str, Callable[[Sequence[str]], bool]] = {
    "recursive-delete-root": _rm_root,
    "recursive-delete-home": _rm_home,
    "make-filesystem": _mkfs,
    "wipe-device": _wipe,
    "shred-device": _shred,
    "dd-to-block-device": _dd,
    "write-to-block-device": _tee_or_cp_to_device,
    "recursive-chmod-root": _recursive_mode(("chmod",)),
    "recursive-chown-root": _recursive_mode(("chown", "chgrp")),
    "find-delete-root": _find_delete,
    "move-system-dir": _move_system_dir,
}
BUILTIN_RULES: tuple[str, ...] = (
    *_WORD_RULES,
    "redirect-to-block-device",
    "fork-bomb",
    "nesting-too-deep",
)


# --- checking -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _command_violations(
    command: Command, extra_rules: Sequence[DenyRule], skip: Collection[str]
) -> Iterator[Violation]:
    words = command.words
    if words:
        for name, check in _WORD_RULES.items():
            if name not in skip and check(words):
                yield Violation(name, command.text)
    if "redirect-to-block-device" not in skip:
        for op, target in command.redirects:
            if op in _WRITE_REDIRECTS and _is_block_device(target):
                yield Violation("redirect-to-block-device", f"{command.text} {op} {target}".strip())
    views = dict.fromkeys((command.written_text, command.text))
    for rule in extra_rules:
        if rule.name in skip:
            continue
        regex = _compiled(rule.pattern)
        hit = next((view for view in views if regex.search(view)), None)
        if hit is not None:
            yield Violation(rule.name, hit)


def check_command(
    command: str,
    *,
    extra_rules: Sequence[DenyRule] = (),
    allowed: Collection[str] = (),
) -> list[Violation]:
    """Every violation in `command` (empty list = allowed).

    `allowed` holds rule names (built-in or extra) to skip. Raises ``re.error`` if an extra
    rule's pattern is not a valid regular expression.
    """
    skip = frozenset(allowed)
    analysis = analyze(command)
    violations: list[Violation] = []
    for command_ in analysis.commands:
        violations.extend(_command_violations(command_, extra_rules, skip))
    if "fork-bomb" not in skip:
        violations.extend(Violation("fork-bomb", bomb) for bomb in analysis.fork_bombs)
    if analysis.too_deep and "nesting-too-deep" not in skip:
        violations.append(Violation("nesting-too-deep", "nested shell invocations"))
    return list(dict.fromkeys(violations))


def check_script(
    text: str,
    *,
    extra_rules: Sequence[DenyRule] = (),
    allowed: Collection[str] = (),
) -> list[Violation]:
    """Every violation in a multi-line shell script (empty list = allowed)."""
    normalized = text.replace("\r\n", "\n").replace("\r", "\n")
    return check_command(normalized, extra_rules=extra_rules, allowed=allowed)


# --- the one entry point ------------------------------------------------------------------

#: Commands longer than this are parsed in a thread (about 2 s per 100 KB).
_THREAD_OVER = 4096


async def site_rules(knm: Knm) -> tuple[list[DenyRule], list[str]]:
    """The site's ``(deny_rules, allow_rules)``: today they live in the SSH settings, and none
    apply when no plugin provides those settings."""
    try:
        settings = await knm.features.settings("ssh")
    except Exception:  # the ssh plugin is blocked: no site rules
        return [], []
    return list(getattr(settings, "deny_rules", [])), list(getattr(settings, "allow_rules", []))


async def violations(knm: Knm, command: str, context: CommandContext) -> list[Violation]:
    """Every violation of ``command`` (a command line or a whole shell script): built-in rules,
    the site's rules and every plugin's ``knm_check_command``."""
    from knm.core.manager import collect

    deny, allow = await site_rules(knm)
    text = command.replace("\r\n", "\n").replace("\r", "\n")
    try:
        if len(text) > _THREAD_OVER:
            found = await asyncio.to_thread(check_command, text, extra_rules=deny, allowed=allow)
        else:
            found = check_command(text, extra_rules=deny, allowed=allow)
    except re.error:
        # Settings are checked when saved; one stored by hand must not let commands through.
        found = [Violation("invalid-deny-rule", "a deny rule of the SSH settings is invalid")]
    found.extend(collect(knm.pm.hook.knm_check_command(command=text, context=context)))
    return found


async def check(knm: Knm, command: str, context: CommandContext) -> None:
    """Raises the spec's 422 (``Invalid``) when the policy blocks ``command``."""
    found = await violations(knm, command, context)
    if found:
        from knm.core.errors import Invalid

        raise Invalid(found[0].message, message="command validation failed")
