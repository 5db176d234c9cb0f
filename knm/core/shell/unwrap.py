"""Wrappers peeled off a command (``sudo``, ``env``, ``nsenter``, ``sh -c``, ``xargs`` ...)
until the program that really runs is first, with the shell code it runs."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from knm.core.shell.programs import SHELLS, program_name
from knm.core.shell.values import MAX_ALTS, U, Word, lit, split_unquoted

ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\[[^\]]*\])?\+?=(.*)$", re.S)


@dataclass(slots=True)
class Unwrapped:
    words: list[Word]
    #: Shell code the command runs (``sh -c CODE``, ``eval``, ``watch``, ``su -c`` ...), with
    #: the words that become ``$0 $1 ...`` in it (None: the caller's).
    code: list[tuple[Word, list[Word] | None]] = field(default_factory=list)
    #: The command runs shell code read from its stdin (``sh``, ``bash -s``, ``at``).
    stdin_code: bool = False
    cwd: str | None = None


#: Options of ``nsenter`` and ``unshare`` that take a value (a namespace file, an id, a path).
_NAMESPACE_OPTIONS = frozenset({"setuid", "setgid", "root", "wd", "mount", "uts", "ipc", "net",
                                "pid", "user", "cgroup", "time"})  # fmt: skip


_UNSHARE_OPTIONS = frozenset({"propagation", "setgroups", "map-user", "map-group", "map-users",
                              "map-groups", "load-interp", "monotonic", "boottime"})  # fmt: skip


# Wrapper -> (short options taking a value, long options taking a value, leading operands).
_WRAPPERS: dict[str, tuple[str, frozenset[str], int]] = {
    "sudo": (
        "ugCDprtUThRc",
        frozenset(
            {
                "user",
                "group",
                "chdir",
                "prompt",
                "role",
                "type",
                "other-user",
                "close-from",
                "host",
                "command-timeout",
                "chroot",
                "login-class",
            }
        ),
        0,
    ),
    "doas": ("uC", frozenset(), 0),
    "pkexec": ("", frozenset({"user"}), 0),
    "env": (
        "uCS",
        frozenset(
            {"unset", "chdir", "split-string", "block-signal", "default-signal", "ignore-signal"}
        ),
        0,
    ),
    "nohup": ("", frozenset(), 0),
    "setsid": ("", frozenset(), 0),
    "nice": ("n", frozenset({"adjustment"}), 0),
    "ionice": ("cnpPut", frozenset({"class", "classdata", "pid", "pgid", "uid"}), 0),
    "timeout": ("sk", frozenset({"signal", "kill-after"}), 1),
    "stdbuf": ("ioe", frozenset({"input", "output", "error"}), 0),
    "chrt": ("T", frozenset({"sched-runtime", "sched-deadline", "sched-period"}), 1),
    "taskset": ("", frozenset(), 1),
    "numactl": (
        "mNCipPw",
        frozenset({"membind", "cpunodebind", "physcpubind", "interleave", "preferred", "cpubind"}),
        0,
    ),
    "exec": ("a", frozenset(), 0),
    "command": ("", frozenset(), 0),
    "builtin": ("", frozenset(), 0),
    "time": ("fo", frozenset({"format", "output"}), 0),
    # ``--mount[=FILE]``: a namespace option's value is attached with ``=`` or absent.
    "nsenter": ("tSG", frozenset({"target", "setuid", "setgid"}), 0),
    "unshare": ("RwSG", frozenset({"setuid", "setgid", "root", "wd"}) | _UNSHARE_OPTIONS, 0),
    "chroot": ("", frozenset({"userspec", "groups"}), 1),
    "systemd-run": (
        "uMHpEsG",
        frozenset(
            {
                "unit",
                "property",
                "description",
                "slice",
                "setenv",
                "uid",
                "gid",
                "nice",
                "working-directory",
                "on-active",
                "on-boot",
                "on-startup",
                "on-unit-active",
                "on-unit-inactive",
                "on-calendar",
                "on-clock-change",
                "on-timezone-change",
                "timer-property",
                "path-property",
                "socket-property",
                "service-type",
                "machine",
                "host",
                "expand-environment",
                "slice-inherit",
                "json",
            }
        ),
        0,
    ),
    "systemd-inhibit": ("", frozenset({"what", "who", "why", "mode"}), 0),
    "strace": (
        "oeEpPsuaIbXSO",
        frozenset(
            {
                "output",
                "expr",
                "env",
                "attach",
                "path",
                "string-limit",
                "user",
                "columns",
                "trace",
                "signal",
                "status",
                "trace-path",
                "summary-sort-by",
                "decode-fds",
                "quiet",
                "seccomp-bpf",
            }
        ),
        0,
    ),
    "ltrace": ("oeEpsuaAnlS", frozenset({"output", "library"}), 0),
    "flock": ("wEc", frozenset({"timeout", "wait", "conflict-exit-code", "command"}), 1),
    "setpriv": (
        "",
        frozenset(
            {
                "reuid",
                "regid",
                "groups",
                "inh-caps",
                "ambient-caps",
                "bounding-set",
                "securebits",
                "pdeathsig",
                "selinux-label",
                "apparmor-profile",
                "landlock-access",
                "landlock-rule",
                "reset-env",
            }
        ),
        0,
    ),
    "cgexec": ("g", frozenset(), 0),
    "sg": ("", frozenset(), 1),
    "runuser": (
        "ugGsw",
        frozenset({"user", "group", "supp-group", "shell", "whitelist-environment"}),
        0,
    ),
    "busybox": ("", frozenset(), 0),
    "toybox": ("", frozenset(), 0),
    "systemd-nspawn": (
        "DMuEiSpZ",
        frozenset(
            {
                "directory",
                "machine",
                "user",
                "setenv",
                "image",
                "slice",
                "property",
                "bind",
                "bind-ro",
                "chdir",
                "uuid",
                "network-bridge",
                "network-zone",
            }
        ),
        0,
    ),
    "faketime": ("f", frozenset(), 1),
    "proxychains": ("f", frozenset(), 0),
    "proxychains4": ("f", frozenset(), 0),
    "torsocks": ("uapi", frozenset(), 0),
    "catchsegv": ("", frozenset(), 0),
    "valgrind": ("", frozenset(), 0),
    "firejail": ("", frozenset(), 0),
    "xvfb-run": ("nsfe", frozenset(), 0),
    "dbus-run-session": ("", frozenset(), 0),
    "then": ("", frozenset(), 0),
    "do": ("", frozenset(), 0),
    "else": ("", frozenset(), 0),
    "!": ("", frozenset(), 0),
    "caffeinate": ("t", frozenset(), 0),
    "daemonize": ("acEeopluv", frozenset(), 0),
}


UNWRAPS = frozenset(_WRAPPERS) | SHELLS | frozenset(
    {"eval", "su", "runuser", "watch", "script", "flock", "at", "batch", "parallel", "trap",
     "command", "sudo", "env", "busybox", "toybox", "coproc", "perf", "gdb", "sg", "newgrp",
     "ssh"}
)  # fmt: skip


def unwrap(words: list[Word]) -> Unwrapped:
    """Peel wrappers off ``words`` until the program that really runs is first."""
    result = Unwrapped(words=list(words))
    for _ in range(64):
        rest = strip_assignments(result.words)
        result.words = rest
        if not rest:
            return result
        program = program_name(rest[0].value)
        if rest[0].unknown and rest[0].value == "":
            return result
        if program not in UNWRAPS:
            return result
        args = rest[1:]
        values = [w.value for w in args]
        if program in SHELLS or (
            program in ("busybox", "toybox") and values[:1] and values[0] in SHELLS
        ):
            if program in ("busybox", "toybox"):
                args, values = args[1:], values[1:]
            code, after = _shell_code(args)
            if code is not None:
                result.code.append((code, after))
                result.words = [rest[0], *args]
                return result
            operands = [w for w in args if not w.value.startswith(("-", "+"))]
            if not operands or "-s" in values:
                result.stdin_code = True
            return result
        if program == "eval":
            if args:
                result.code.append((join_words(args), None))
            return result
        if (
            program == "perf"
            and values[:1]
            and values[0] in ("stat", "record", "trace", "sched", "mem", "c2c", "kvm", "lock")
        ):
            inner = args[1:]
            if "--" in values[1:]:
                inner = args[values.index("--", 1) + 1 :]
            else:
                inner = skip_options(inner, "eopCGtFcjrxIuTm", frozenset({"event", "output",
                                      "pid", "tid", "cpu", "cgroup", "freq", "count"}))  # fmt: skip
            if not inner:
                return result
            result.words = inner
            continue
        if program == "gdb" and "--args" in values:
            result.words = args[values.index("--args") + 1 :]
            continue
        if program == "sg" and len(args) >= 2:  # ``sg GROUP -c CMD``, ``sg GROUP CMD``
            rest = args[2:] if values[1] == "-c" else args[1:]
            if rest:
                result.code.append((join_words(rest), []))
            return result
        if program == "newgrp":
            result.stdin_code = True
            return result
        if program == "ssh":  # the command runs on a node too: read as code there
            inner = skip_options(args, "BbcDEeFIiJLlmOoPpQRSWw", frozenset())
            if len(inner) > 1:
                result.code.append((join_words(inner[1:]), []))
            return result
        if program == "coproc":  # ``coproc CMD``, ``coproc NAME { ...; }``
            body = args[1:] if len(args) > 1 and values[1] in ("{", "(", "((") else args
            if body:
                result.code.append((join_words(body), None))
            return result
        if (
            program in ("su", "runuser")
            and any(
                v.startswith("-c") or (v[:1] == "-" and v[1:2] != "-" and "c" in v) for v in values
            )
        ) or any(v.startswith(("--command", "--session-command")) for v in values):
            code = option_word(args, "c", ("command", "session-command"))
            if code is not None:
                result.code.append((code, []))
                return result
        if program in ("watch",):
            inner = skip_options(args, "ndgqp", frozenset({"interval", "differences"}))
            if "-x" in values or "--exec" in values:
                result.words = inner
                continue
            if inner:
                result.code.append((join_words(inner), []))
            return result
        if program == "script":
            code = option_word(args, "c", ("command",))
            if code is not None:
                result.code.append((code, []))
            return result
        if program == "flock":
            code = option_word(args, "c", ("command",))
            if code is not None:
                result.code.append((code, []))
                return result
        if program in ("at", "batch"):
            if "-f" not in values and not any(v in ("-l", "-c", "-r", "-d") for v in values):
                result.stdin_code = True
            return result
        if program == "parallel":
            result.code.extend((c, []) for c in _parallel_code(args))
            return result
        if program == "trap" and args:
            if values[0] not in ("-l", "-p", "--", "-"):
                result.code.append((args[0], None))
            return result
        if program == "command" and any(v.startswith("-") and ("v" in v or "V" in v)
                                        for v in values[:1]):  # fmt: skip
            return result
        if program == "sudo" and any(v in ("-e", "-l", "-v", "-k", "-K", "-V", "--list",
                                           "--edit", "--validate") for v in values):  # fmt: skip
            return result
        own = values[: len(values) - len(skip_options(args, *_WRAPPERS["sudo"][:2]))]
        if program == "sudo" and any(v in ("-s", "-i", "--shell", "--login") for v in own):
            inner = skip_options(args, *_WRAPPERS["sudo"][:2])
            if inner:
                result.code.append((join_words(inner), []))
            return result
        if program == "env":
            split = option_word(args, "S", ("split-string",))
            chdir = option_word(args, "C", ("chdir",))
            if chdir is not None:
                result.cwd = chdir.alts[0]
            if split is not None:
                inner = skip_options(args, "uCS", _WRAPPERS["env"][1], assignments=True)
                result.words = [*(lit(p) for p in split_unquoted(split.value)), *inner]
                continue
        if program == "su" or (program == "runuser" and "-u" not in values):
            return result  # an interactive shell as another user: nothing to follow
        spec = _WRAPPERS.get(program)
        if spec is None:
            return result
        if program == "flock" and values and values[0].isdigit():
            return result
        inner = skip_options(args, spec[0], spec[1], assignments=program == "env")[spec[2] :]
        if program == "chroot" and inner and inner[0].value.startswith("-"):
            inner = inner[1:]
        if not inner:
            return result
        result.words = inner
    return result


def _shell_code(args: Sequence[Word]) -> tuple[Word | None, list[Word]]:
    """A shell's ``-c`` code, and the words after it (``$0``, ``$1`` ...)."""
    has_c = False
    i = 0
    while i < len(args):
        value = args[i].value
        if value == "--":
            i += 1
            break
        if value in ("-o", "+o", "--rcfile", "--init-file", "-O", "+O"):
            i += 2
            continue
        if value[:1] in "-+" and len(value) > 1:
            has_c = has_c or (not value.startswith("--") and "c" in value) or value == "--command"
            i += 1
            continue
        break
    if has_c and i < len(args):
        return args[i], list(args[i + 1 :])
    return None, []


def option_word(args: Sequence[Word], short: str, long: tuple[str, ...]) -> Word | None:
    for i, word in enumerate(args):
        value = word.value
        if value == "--":
            return None
        for name in long:
            if value.startswith(f"--{name}="):
                return Word((value.partition("=")[2],), word.text, tainted=word.tainted)
            if value == f"--{name}":
                return args[i + 1] if i + 1 < len(args) else None
        if value.startswith("-") and not value.startswith("--") and short:
            flags = value[1:]
            pos = flags.find(short)
            if pos >= 0 and all(c.isalpha() for c in flags[:pos]):
                rest = flags[pos + 1 :]
                if rest:
                    return Word((rest,), word.text)
                return args[i + 1] if i + 1 < len(args) else None
    return None


def skip_options(
    args: Sequence[Word], short_with_arg: str, long_with_arg: frozenset[str],
    assignments: bool = False,
) -> list[Word]:  # fmt: skip
    i = 0
    while i < len(args):
        value = args[i].value
        if value == "--":
            return list(args[i + 1 :])
        if value.startswith("--"):
            name, eq, _ = value[2:].partition("=")
            i += 2 if (not eq and name in long_with_arg) else 1
        elif value.startswith("-") and len(value) > 1:
            i += 1
            for j, flag in enumerate(value[1:], start=1):
                if flag in short_with_arg:
                    i += j == len(value) - 1
                    break
        elif assignments and ASSIGNMENT.match(value):
            i += 1  # env NAME=value
        else:
            break
    return list(args[i:])


def _parallel_code(args: Sequence[Word]) -> list[Word]:
    values = [w.value for w in args]
    separators = [i for i, v in enumerate(values) if v in (":::", "::::", ":::+", "::::+")]
    head = list(args[: separators[0]]) if separators else list(args)
    inputs = list(args[separators[0] + 1 :]) if separators else []
    template = skip_options(
        head, "jSNnLlXsIeaE", frozenset({"jobs", "sshlogin", "halt", "results", "joblog", "delay"})
    )
    if not template:
        return inputs if inputs else [Word((U,), "parallel")]
    joined = join_words(template)
    if not inputs:  # lines of stdin, each put in for ``{}`` or appended (quoted by parallel)
        unknown = '"${__knm_unknown}"'
        return [
            joined.with_alts(
                tuple(
                    a.replace("{}", unknown) if "{}" in a else f"{a} {unknown}" for a in joined.alts
                )
            )
        ]
    out = []
    for arg in inputs[:MAX_ALTS]:
        out.append(
            Word(
                tuple(
                    a.replace("{}", arg.alts[0]) if "{}" in a else f"{a} {arg.alts[0]}"
                    for a in joined.alts
                ),
                joined.text,
            )
        )
    return out


def quoted(word: Word) -> str:
    """A word written back as shell text: its first value quoted, unknown parts as an
    unknown expansion."""
    value = word.alts[0] if word.alts else ""
    parts = value.split(U)
    return '"${__knm_unknown}"'.join("'" + p.replace("'", "'\\''") + "'" for p in parts)


def join_words(words: Sequence[Word]) -> Word:
    alts: tuple[str, ...] = ("",)
    for i, word in enumerate(words):
        sep = " " if i else ""
        alts = tuple(dict.fromkeys(a + sep + b for a in alts for b in word.alts))[:MAX_ALTS]
    return Word(alts, " ".join(w.text for w in words), tainted=any(w.tainted for w in words),
                producers=tuple(p for w in words for p in w.producers))  # fmt: skip


def strip_assignments(words: list[Word]) -> list[Word]:
    i = 0
    while (
        i < len(words)
        and "=" in words[i].value
        and ASSIGNMENT.match(words[i].value)
        and words[i].text[:1] not in "\"'"
    ):
        i += 1
    return words[i:] if i else words
