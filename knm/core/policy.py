"""The command guard-rail every path that runs shell on nodes goes through.

It is a guard-rail against mistakes and careless pastes, not a sandbox: it refuses commands
whose *effect* falls in one of these classes, however they are spelled (``docs/design.md``,
"The command guard-rail", says what it cannot see):

* ``system-paths``: recursive delete, overwrite, truncation, move or recursive permission change
  of ``/``, the top-level system directories, the home directory and the paths a Kubernetes node
  lives on (``/etc/kubernetes``, ``/var/lib/etcd``, ``/var/lib/kubelet`` ...), and of the files
  whose loss stops a node (``/etc/passwd``, ``/etc/fstab``, the cluster's kubeconfigs ...);
* ``block-devices``: any write to a block device and every destructive disk, partition,
  encryption, RAID, LVM and ZFS tool, unless it is asked for a dry run or a listing;
* ``fork-bombs``: functions that start themselves asynchronously, endless loops that start
  background jobs without waiting, scripts that start copies of themselves;
* ``kill-all``: signalling every process (``kill -9 -1``, ``killall5``, ``pkill .``, every pid
  of ``ps -e``) or init;
* ``sysrq``: writing to ``/proc/sysrq-trigger``;
* ``remote-code``: code fetched or decoded and handed to an interpreter (``curl | sh``,
  ``base64 -d | bash``, ``sh <(curl ..)``, ``eval "$(curl ..)"``), and ``eval``/``sh -c`` of
  text whose commands cannot be known here.

``knm.core.shellparse`` works out what the text would run; the classes (``knm.core.shell.rules``)
judge each command. Sites add deny rules and allow rules (names of classes or rules, and patterns that let a command
through) in the SSH settings; their patterns run on RE2, linear in the text.

``check(knm, command, context)`` is the one way anything that runs shell on nodes applies the
policy: the built-in classes, the site's rules and every plugin's ``knm_check_command``. The work
runs in a small thread pool, never on the event loop, and text over ``MAX_COMMAND_BYTES`` is
refused before it is parsed.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import msgspec

from knm.core.patterns import compile_pattern
from knm.core.shell.paths import GLOB
from knm.core.shell.rules import COMMAND_CLASSES, as_each_program, judged, writes
from knm.core.shell.split import COMMAND_LIMITS, NO_LIMITS
from knm.core.shell.values import Cmd, U
from knm.core.shellparse import analyze

if TYPE_CHECKING:
    from knm.core.state import Knm

__all__ = [
    "BUILTIN_RULES",
    "CLASSES",
    "MAX_COMMAND_BYTES",
    "MAX_SCRIPT_BYTES",
    "AllowPattern",
    "CommandContext",
    "DenyRule",
    "Violation",
    "check",
    "check_command",
    "check_script",
    "violations",
]

#: A command longer than this is refused before it is parsed.
MAX_COMMAND_BYTES = 64 * 1024
#: Scripts and playbooks are stored content, bounded by their own size limit (1 MiB).
MAX_SCRIPT_BYTES = 1024 * 1024


class DenyRule(msgspec.Struct, frozen=True):
    """A site rule: ``pattern`` (RE2 syntax) is searched in each command that would run, both as
    written (wrappers included) and unwrapped, words joined by spaces."""

    name: str
    pattern: str
    description: str = ""


class AllowPattern(msgspec.Struct, frozen=True):
    """A site exception: a command matching ``pattern`` (RE2, searched like a deny rule) is
    not judged by the built-in classes. Structural findings (fork bombs, fetched code) stay."""

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
        if self.rule == "too-long":
            return self.matched
        return f"dangerous command blocked: {self.matched}"


class CommandContext(msgspec.Struct, kw_only=True):
    """What ``knm_check_command`` implementations are told about who asks, and where."""

    #: The executor or step type running the command (``ssh``, ``script``, ``workflow`` …).
    kind: str
    cluster_name: str
    username: str | None = None
    role: str | None = None
    sudo: bool = False


CLASSES: tuple[str, ...] = (
    "system-paths",
    "block-devices",
    "fork-bombs",
    "kill-all",
    "sysrq",
    "remote-code",
)
#: Rules a site may name in ``allow_rules``: the classes and the checker's own limits.
BUILTIN_RULES: tuple[str, ...] = (*CLASSES, "nesting-too-deep", "too-complex", "too-long")
_FINDING_CLASS = {"fork-bomb": "fork-bombs", "remote-code": "remote-code"}


# --- checking -------------------------------------------------------------------------------


def _matched(cmd: Cmd) -> str:
    text = cmd.text
    written = cmd.written.strip()
    if "$?" in text or not text.strip():
        return written[:500]
    return text[:500]


def _redirect_text(cmd: Cmd) -> str:
    base = _matched(cmd) if cmd.words and cmd.program != ":" else ""
    extra = " ".join(f"{op} {t.alts[0].replace(U, '$?')}" for op, t in cmd.redirects)
    return f"{base} {extra}".strip() if base else extra or cmd.written.strip()


def check_command(
    command: str,
    *,
    variables: Mapping[str, str] | None = None,
    deferred: Collection[str] = (),
    extra_rules: Sequence[DenyRule] = (),
    allow_patterns: Sequence[AllowPattern] = (),
    allowed: Collection[str] = (),
    limit: int = MAX_COMMAND_BYTES,
) -> list[Violation]:
    """Every violation in ``command`` (a command line or a whole script; empty = allowed).

    ``variables`` are values known for this run (a script's parameters, given as environment);
    ``deferred`` names variables whose values are checked when they are known. ``allowed`` holds
    rule names (classes or the site's) to skip. Raises ``ValueError`` if a site pattern is not
    valid RE2."""
    skip = frozenset(allowed)
    size = len(command.encode("utf-8", "surrogatepass"))
    if size > limit:
        if "too-long" in skip:
            return []
        return [
            Violation("too-long", f"command too long: {size} bytes, at most {limit} are accepted")
        ]
    text = command.replace("\r\n", "\n").replace("\r", "\n")
    deny = [(rule, compile_pattern(rule.pattern)) for rule in extra_rules if rule.name not in skip]
    allow = [compile_pattern(rule.pattern) for rule in allow_patterns if rule.name not in skip]
    if "too-complex" in skip:
        limits = NO_LIMITS  # a site that allows it has every text walked to its end
    elif limit <= MAX_COMMAND_BYTES:
        limits = COMMAND_LIMITS
    else:
        limits = COMMAND_LIMITS.scaled(
            limit / MAX_COMMAND_BYTES, "script", "split it into smaller scripts"
        )
    analysis = analyze(text, dict(variables or {}), tuple(deferred), limits=limits)
    found: list[Violation] = []
    sited = bool(deny or allow)
    commands: list[Cmd] = []
    for cmd in analysis.commands:
        if GLOB.search(cmd.program):  # ``/usr/bin/r? -rf /``: any program the glob names
            commands.extend(as_each_program(cmd))
        else:
            commands.append(cmd)
    for cmd in commands:
        relevant = judged(cmd)
        if not relevant and not sited:
            continue  # most commands of a long script: nothing to test
        views = dict.fromkeys((cmd.written.strip(), cmd.text)) if sited else {}
        excepted = any(regex.search(view) for regex in allow for view in views)
        if relevant and not excepted:
            for name, test in COMMAND_CLASSES:
                if name not in skip and test(cmd):
                    redirected = any(writes(op) for op, _ in cmd.redirects)
                    matched = (
                        _redirect_text(cmd) if redirected and name != "kill-all" else _matched(cmd)
                    )
                    found.append(Violation(name, matched))
        for rule, regex in deny:
            hit = next((view for view in views if regex.search(view)), None)
            if hit is not None:
                found.append(Violation(rule.name, hit))
    for finding in analysis.findings:
        rule = _FINDING_CLASS.get(finding.rule, finding.rule)
        if rule not in skip:
            found.append(Violation(rule, finding.matched))
    if analysis.stand_ins:  # a vertical tab or form feed: shown escaped
        found = [Violation(v.rule, analysis.shown(v.matched)) for v in found]
    return list(dict.fromkeys(found))


def check_script(
    text: str,
    *,
    variables: Mapping[str, str] | None = None,
    deferred: Collection[str] = (),
    extra_rules: Sequence[DenyRule] = (),
    allow_patterns: Sequence[AllowPattern] = (),
    allowed: Collection[str] = (),
) -> list[Violation]:
    """Every violation in a stored script (up to ``MAX_SCRIPT_BYTES``)."""
    return check_command(
        text, variables=variables, deferred=deferred, extra_rules=extra_rules,
        allow_patterns=allow_patterns, allowed=allowed, limit=MAX_SCRIPT_BYTES,
    )  # fmt: skip


# --- the one entry point --------------------------------------------------------------------

#: Checks run here, never on the event loop: two threads (the machine's cores are for the
#: executors), so a burst of huge commands queues instead of starving the server.
_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="knm-policy")


class SiteRules(msgspec.Struct, kw_only=True):
    deny: list[DenyRule] = msgspec.field(default_factory=list)
    allow: list[str] = msgspec.field(default_factory=list)
    allow_patterns: list[AllowPattern] = msgspec.field(default_factory=list)


async def site_rules(knm: Knm) -> SiteRules:
    """The site's rules: they live in the SSH settings, and none apply when no plugin provides
    those settings."""
    try:
        settings = await knm.features.settings("ssh")
    except Exception:  # the ssh plugin is blocked: no site rules
        return SiteRules()
    return SiteRules(
        deny=list(getattr(settings, "deny_rules", [])),
        allow=list(getattr(settings, "allow_rules", [])),
        allow_patterns=list(getattr(settings, "allow_patterns", [])),
    )


async def run_check(
    text: str,
    *,
    rules: SiteRules | None = None,
    variables: Mapping[str, str] | None = None,
    deferred: Collection[str] = (),
    limit: int = MAX_COMMAND_BYTES,
) -> list[Violation]:
    """``check_command`` in the policy's thread pool (the size limit is applied first, here)."""
    rules = rules or SiteRules()
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limit and "too-long" not in rules.allow:
        return [
            Violation("too-long", f"command too long: {size} bytes, at most {limit} are accepted")
        ]
    call = functools.partial(
        check_command, text, variables=variables, deferred=deferred, extra_rules=rules.deny,
        allow_patterns=rules.allow_patterns, allowed=rules.allow, limit=limit,
    )  # fmt: skip
    try:
        return await asyncio.get_running_loop().run_in_executor(_POOL, call)
    except ValueError:
        # Settings are checked when saved; one stored by hand must not let commands through.
        return [Violation("invalid-site-rule", "a rule of the SSH settings is not valid RE2")]


async def violations(
    knm: Knm,
    command: str,
    context: CommandContext,
    *,
    variables: Mapping[str, str] | None = None,
    deferred: Collection[str] = (),
    limit: int = MAX_COMMAND_BYTES,
) -> list[Violation]:
    """Every violation of ``command`` (a command line or a whole shell script): built-in classes,
    the site's rules and every plugin's ``knm_check_command``."""
    from knm.core.manager import collect

    text = command.replace("\r\n", "\n").replace("\r", "\n")
    found = await run_check(
        text, rules=await site_rules(knm), variables=variables, deferred=deferred, limit=limit
    )
    if any(v.rule == "too-long" for v in found):
        return found
    found.extend(collect(knm.pm.hook.knm_check_command(command=text, context=context)))
    return found


async def check(
    knm: Knm,
    command: str,
    context: CommandContext,
    *,
    variables: Mapping[str, str] | None = None,
    deferred: Collection[str] = (),
    limit: int = MAX_COMMAND_BYTES,
) -> None:
    """Raises the spec's 422 (``Invalid``) when the policy blocks ``command``."""
    found = await violations(
        knm, command, context, variables=variables, deferred=deferred, limit=limit
    )
    if found:
        from knm.core.errors import Invalid

        raise Invalid(found[0].message, message="command validation failed")
