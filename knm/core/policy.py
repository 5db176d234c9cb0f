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

``knm.core.shellparse`` works out what the text would run; the checks below judge each command.
Sites add deny rules and allow rules (names of classes or rules, and patterns that let a command
through) in the SSH settings; their patterns run on RE2, linear in the text.

``check(knm, command, context)`` is the one way anything that runs shell on nodes applies the
policy: the built-in classes, the site's rules and every plugin's ``knm_check_command``. The work
runs in a small thread pool, never on the event loop, and text over ``MAX_COMMAND_BYTES`` is
refused before it is parsed.
"""

from __future__ import annotations

import asyncio
import fnmatch
import functools
import posixpath
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import msgspec

from knm.core.patterns import compile_pattern
from knm.core.shell.split import COMMAND_LIMITS, NO_LIMITS
from knm.core.shell.values import Cmd, U, Word, normalize
from knm.core.shellparse import analyze, matches_everything

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


# --- paths ----------------------------------------------------------------------------------

CRITICAL_DIRS: tuple[str, ...] = (
    *(f"/{d}" for d in ("bin", "boot", "dev", "etc", "home", "lib", "lib32", "lib64", "libx32",
                        "opt", "proc", "root", "run", "sbin", "srv", "sys", "usr", "var", "snap")),
    *(f"/usr/{d}" for d in ("bin", "sbin", "lib", "lib32", "lib64", "libexec", "include",
                            "share", "local", "local/bin", "local/sbin", "local/lib")),
    "/var/lib", "/var/spool", "/var/opt",
    # Not /var/lib/cni, /var/lib/calico, /var/lib/rook or /etc/cni: removing them is a documented
    # clean-up step (kubeadm reset, CNI and Rook removal).
    *(f"/var/lib/{d}" for d in ("etcd", "kubelet", "containerd", "docker", "dpkg", "rpm", "apt",
                                "rancher", "systemd", "kubernetes", "crio", "containers", "k3s",
                                "longhorn", "mysql", "postgresql")),
    *(f"/etc/{d}" for d in ("kubernetes", "kubernetes/pki", "kubernetes/pki/etcd",
                            "kubernetes/manifests", "ssh", "systemd", "systemd/system", "default",
                            "pam.d", "sudoers.d", "containerd", "apt",
                            "yum.repos.d", "ssl", "pki", "security", "sysconfig", "network",
                            "netplan", "init.d", "modprobe.d", "sysctl.d", "crio", "docker")),
    "/boot/grub", "/boot/grub2", "/boot/efi",
    "/lib/modules", "/lib/systemd", "/lib/firmware", "/usr/lib/modules", "/usr/lib/systemd",
    "/usr/lib/firmware", "/opt/cni", "/opt/cni/bin", "/root/.ssh",
)  # fmt: skip
CRITICAL_FILES: tuple[str, ...] = (
    "/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow", "/etc/sudoers", "/etc/fstab",
    "/etc/crypttab", "/etc/hostname", "/etc/machine-id", "/etc/ld.so.preload",
    "/etc/kubernetes/*.conf", "/etc/kubernetes/pki/ca.*", "/etc/kubernetes/pki/etcd/ca.*",
    "/etc/kubernetes/pki/sa.*",
    "/var/lib/kubelet/config.yaml", "/var/lib/kubelet/kubeconfig", "/var/lib/kubelet/pki/*",
    "/boot/vmlinuz*", "/boot/initrd*", "/boot/initramfs*", "/boot/grub/grub.cfg",
    "/boot/grub2/grub.cfg", "/boot/efi/EFI/*",
    "/bin/sh", "/bin/bash", "/bin/dash", "/usr/bin/sh", "/usr/bin/bash", "/usr/bin/dash",
    "/usr/bin/sudo", "/usr/bin/env", "/sbin/init", "/usr/sbin/init", "/lib/systemd/systemd",
    "/usr/lib/systemd/systemd", "/lib64/ld-linux*", "/lib/ld-linux*", "/usr/lib64/ld-linux*",
    "/lib/x86_64-linux-gnu/libc.so*", "/usr/lib/x86_64-linux-gnu/libc.so*",
    "/lib/aarch64-linux-gnu/libc.so*", "/usr/lib/aarch64-linux-gnu/libc.so*",
    "/root/.ssh/authorized_keys", "/etc/ssh/sshd_config", "/etc/pam.d/*",
)  # fmt: skip
#: Critical files replaced whole as the way to change them (``cp new.yaml
#: /var/lib/kubelet/config.yaml``, a restore from a backup): a copy or move of a regular file
#: onto one is no destruction; truncating or emptying one is.
REPLACEABLE_FILES: tuple[str, ...] = (
    "/etc/fstab", "/etc/crypttab", "/etc/hostname", "/etc/kubernetes/*.conf",
    "/etc/kubernetes/pki/ca.*", "/etc/kubernetes/pki/etcd/ca.*", "/etc/kubernetes/pki/sa.*",
    "/var/lib/kubelet/config.yaml", "/var/lib/kubelet/kubeconfig", "/etc/ssh/sshd_config",
    "/etc/pam.d/*", "/boot/grub/grub.cfg", "/boot/grub2/grub.cfg",
)  # fmt: skip
#: Critical files holding one value, written whole by ``echo VALUE > FILE``.
VALUE_FILES: tuple[str, ...] = ("/etc/hostname",)
#: Directories every non-root program needs to read and search: taking that away from others
#: (``chmod 700 /usr``, ``chmod 000 /``) stops a node even without ``-R``.
PUBLIC_DIRS: frozenset[str] = frozenset(
    {"/", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/usr", "/usr/bin",
     "/usr/sbin", "/usr/lib", "/usr/lib64", "/usr/libexec", "/usr/share", "/usr/local",
     "/usr/local/bin", "/etc", "/var", "/var/lib", "/dev", "/run", "/opt", "/usr/lib/systemd",
     "/lib/systemd"}
)  # fmt: skip
#: Trees root owns whole on a node: ``chown -R root:root`` or taking group/other access away
#: there is hardening (the CIS benchmark's steps for the PKI, kubeconfigs, etcd's data).
ROOT_TREES: tuple[str, ...] = (
    "/etc/kubernetes", "/var/lib/etcd", "/var/lib/kubelet", "/etc/cni", "/opt/cni",
    "/etc/containerd", "/root",
)  # fmt: skip
_DIR_PARTS = tuple(tuple(d.strip("/").split("/")) for d in CRITICAL_DIRS)
_FILE_PARTS = tuple(tuple(f.strip("/").split("/")) for f in CRITICAL_FILES)
_GLOB = re.compile(r"[*?\[]")


def _parts(path: str) -> tuple[str, ...]:
    return tuple(p for p in path.split("/") if p)


def _match(pattern: Sequence[str], name: Sequence[str]) -> bool:
    """Component-wise glob match: ``pattern`` may hold globs (a command's operand), ``name``
    too (a table entry such as ``/etc/kubernetes/*.conf``)."""
    if len(pattern) != len(name):
        return False
    for p, n in zip(pattern, name, strict=True):
        if p == n:
            continue
        if _GLOB.search(p) and fnmatch.fnmatchcase(n, p):
            continue
        if _GLOB.search(n) and (fnmatch.fnmatchcase(p, n) or _globs_overlap(p, n)):
            continue
        return False
    return True


def _globs_overlap(a: str, b: str) -> bool:
    """Whether two globs may name one file: their literal starts and ends agree (``*.bak`` and
    ``*.conf`` cannot; ``ca.*`` and ``*.key`` may)."""
    if not _GLOB.search(a) or not _GLOB.search(b):
        return False
    head_a, head_b = _GLOB.split(a, 1)[0], _GLOB.split(b, 1)[0]
    tail_a, tail_b = re.split(r"[*?\]]", a)[-1], re.split(r"[*?\]]", b)[-1]
    return (head_a.startswith(head_b) or head_b.startswith(head_a)) and (
        tail_a.endswith(tail_b) or tail_b.endswith(tail_a)
    )


def _matches_all(component: str) -> bool:
    return bool(_GLOB.search(component)) and all(
        fnmatch.fnmatchcase(name, component) for name in ("a", "etc", "lib64", "x.conf")
    )


#: Directories every part of which is critical (deleting any of it breaks the node).
CRITICAL_TREES: tuple[str, ...] = ("/var/lib/etcd", "/boot/grub", "/boot/grub2", "/boot/efi")
_TREE_PARTS = tuple(tuple(t.strip("/").split("/")) for t in CRITICAL_TREES)


@functools.lru_cache(maxsize=4096)
def critical_dir(path: str) -> str | None:
    """The critical directory ``path`` names, or whose whole content it globs (``/etc/*``)."""
    parts = _parts(path)
    if not parts:
        return "/"
    for tree in _TREE_PARTS:
        if len(parts) > len(tree) and _match(parts[: len(tree)], tree):
            return "/" + "/".join(tree)
    for crit in _DIR_PARTS:
        if _match(parts, crit):
            return "/" + "/".join(crit)
    for crit in _FILE_PARTS:  # a directory holding a critical file (``/lib/x86_64-linux-gnu``)
        if len(parts) < len(crit) and _match(parts, crit[: len(parts)]):
            return "/" + "/".join(crit[: len(parts)])
    return critical_children(path)


@functools.lru_cache(maxsize=4096)
def critical_children(path: str) -> str | None:
    """``path`` globs the whole content of a critical directory (``/usr/bin/*``, ``/*``)."""
    parts = _parts(path)
    if not parts or not _matches_all(parts[-1]):
        return None
    parent = parts[:-1]
    if not parent:
        return "/*"
    for crit in _DIR_PARTS:
        if _match(parent, crit):
            return "/" + "/".join(crit) + "/*"
    return None


@functools.lru_cache(maxsize=4096)
def _listed_file(path: str) -> str | None:
    parts = _parts(path)
    for crit in _FILE_PARTS:
        if _match(parts, crit):
            return "/" + "/".join(crit)
    return None


def _in_critical_tree(path: str) -> str | None:
    """The critical tree ``path`` lies inside (``/var/lib/etcd/member/snap/db``), as a glob."""
    parts = _parts(path)
    for tree in _TREE_PARTS:
        if len(parts) > len(tree) and _match(parts[: len(tree)], tree):
            return "/" + "/".join(tree) + "/*"
    return None


@functools.lru_cache(maxsize=4096)
def critical_file(path: str) -> str | None:
    """The critical file ``path`` names: one listed in ``CRITICAL_FILES``, or any file inside a
    critical tree (emptying etcd's ``member/snap/db`` stops the node as surely as ``rm -rf``
    of its directory does)."""
    return _listed_file(path) or _in_critical_tree(path)


_REPLACEABLE_PARTS = tuple(tuple(f.strip("/").split("/")) for f in REPLACEABLE_FILES)


@functools.lru_cache(maxsize=4096)
def _replaceable(path: str) -> bool:
    """A critical file a copy of a regular file may replace whole: a listed config, or a file
    inside a critical tree (a restore from a backup; not its emptying or deletion)."""
    parts = _parts(path)
    if _GLOB.search(path):
        return False
    if _in_critical_tree(path) and not _listed_file(path):
        return True
    return any(_match(parts, crit) for crit in _REPLACEABLE_PARTS)


def _into(directory: Word, source: Word) -> Word | None:
    """Where a copy, move or link of ``source`` into ``directory`` lands (``DIR/NAME``), when
    the source's name is known."""
    names = {posixpath.basename(alt.rstrip("/")) for alt in source.alts}
    if not names or any(not n or U in n or n in (".", "..") for n in names):
        return None
    alts = tuple(f"{d.rstrip('/')}/{n}" for d in directory.alts for n in sorted(names))
    return directory.with_alts(alts[:32])


def _into_each(directory: Word) -> Callable[[Word], Word]:
    """``_into`` for ``map``: a source whose name is unknown lands nowhere known (the
    directory itself stands in)."""
    return lambda source: _into(directory, source) or directory


def _overwrites(targets: Sequence[Word], sources: Sequence[Word], cwd: str) -> bool:
    """Writing ``targets`` whole from ``sources`` destroys a critical file: one not replaced
    whole from known regular files (no sources: the content is unknown or empty)."""
    replaced = bool(sources) and all(_regular_source(w, cwd) for w in sources)
    return any(
        _any(w, cwd, critical_file)
        and not (replaced and all(_replaceable(p) for p in probes(w, cwd)))
        for w in targets
    )


def _critical_executable(path: str) -> bool:
    """A critical file programs are run or loaded from (a shell, init, the loader, libc)."""
    crit = _listed_file(path)
    return crit is not None and (
        "/bin/" in crit or "/sbin/" in crit or "/lib" in crit or crit.endswith("/init")
    )


def _in_root_tree(path: str) -> bool:
    return any(path == t or path.startswith(t + "/") for t in ROOT_TREES)


def _regular_source(word: Word, cwd: str) -> bool:
    """A copy's source that is a known regular file: not a device, not a pipe, not unknown."""
    if word.unknown or word.tainted or _GLOB.search(word.value):
        return False
    path = normalize(word.value if word.value.startswith("/") else f"{cwd}/{word.value}", cwd)
    return not path.startswith(("/dev/", "/proc/", "/sys/")) and path != "/dev"


_DEVICE = re.compile(
    r"^/dev/(?:(?:sd|hd|vd|xvd|ubd)[a-z]+\d*|nvme\d+(?:n\d+(?:p\d+)?)?|mmcblk\d+(?:p\d+|boot\d+)?"
    r"|dm-\d+|md\d+(?:p\d+)?|md/[^/]+|mapper/[^/]+|disk/.+|block/.+|loop\d+(?:p\d+)?|root|sr\d+"
    r"|sg\d+|st\d+|n?st\d+|rbd\d+(?:p\d+)?|nbd\d+(?:p\d+)?|zd\d+|drbd\d+|bcache\d+|mtd(?:block)?\d+"
    r"|ram\d+|zram\d+|pmem\d+|fd\d+|mem|kmem|port|nvram|[^/]+/[^/]+)$"
)
_NOT_DEVICE_DIRS = frozenset({"pts", "shm", "mqueue", "fd", "tcp", "udp", "hugepages", "net",
                              "snd", "input", "bus", "char", "cpu", "dri", "usb", "vfio",
                              "serial", "v4l", "hidraw", "lp", "log", "stdin", "stdout",
                              "stderr", "core", "cuse", "fuse"})  # fmt: skip
_DEVICE_SAMPLES = ("/dev/sda", "/dev/sda1", "/dev/vda", "/dev/xvda", "/dev/hda", "/dev/nvme0n1",
                   "/dev/nvme0n1p1", "/dev/nvme0", "/dev/mmcblk0", "/dev/mmcblk0p1", "/dev/dm-0",
                   "/dev/md0", "/dev/md127", "/dev/mapper/root", "/dev/disk/by-id/x",
                   "/dev/loop0", "/dev/root", "/dev/sg0", "/dev/vg0/root")  # fmt: skip


@functools.lru_cache(maxsize=4096)
def block_device(path: str) -> bool:
    if not path.startswith("/dev/"):
        return False
    parts = _parts(path)
    if len(parts) >= 2 and parts[1] in _NOT_DEVICE_DIRS:
        return False
    if _GLOB.search(path):
        return any(_match(parts, _parts(sample)) for sample in _DEVICE_SAMPLES) or any(
            _DEVICE.match(name) for name in _glob_instances(path)
        )
    return bool(_DEVICE.match(path))


_GLOB_PART = re.compile(r"\[!?\^?\]?[^\]]*\]|[*?]")


def _glob_instances(path: str) -> list[str]:
    """A few names a glob matches, each glob part filled in with a letter, a digit, both, or
    nothing (``/dev/vdb?``: ``/dev/vdba``, ``/dev/vdb1``; ``/dev/sd[b]``: ``/dev/sdb``)."""
    out = [""]
    last = 0
    for match in _GLOB_PART.finditer(path):
        literal = path[last : match.start()]
        part = match.group()
        if part == "*":
            fills = ["", "a", "1", "a1"]
        elif part == "?":
            fills = ["a", "1"]
        else:
            fills = [c for c in ("a", "b", "1", "0") if fnmatch.fnmatchcase(c, part)]
            body = part[1:-1].lstrip("!^")
            fills += [body[:1]] if body[:1] and fnmatch.fnmatchcase(body[:1], part) else []
        out = [o + literal + f for o in out for f in dict.fromkeys(fills)][:64]
        last = match.end()
    return [o + path[last:] for o in out]


def _is_sysrq(path: str) -> bool:
    return _match(_parts(path), ("proc", "sysrq-trigger"))


def probes(word: Word, cwd: str) -> list[str]:
    """The absolute paths a target word may name, unknown parts tried as empty, ``/`` and (inside
    an absolute path) any single name."""
    out: list[str] = []
    for alt in word.alts:
        fulls = [alt] if alt.startswith("/") else [f"{cwd}/{alt}" if alt else cwd]
        if alt.startswith(U):
            fulls.append(alt)  # ``$PREFIX/etc``: the prefix may be empty
        # Inside an absolute path an unknown part may be any single name (``/dev/$X``).
        inside = "/" in alt.split(U, 1)[0]
        for full in fulls:
            if U not in full:
                out.append(normalize(full, "/root"))
                continue
            replacements = ["", "/", "*"] if inside else ["", "/"]
            for rep in replacements:
                out.append(normalize(full.replace(U, rep), "/root"))
    return list(dict.fromkeys(out))


def _any(word: Word, cwd: str, test: Callable[[str], object]) -> bool:
    return any(test(p) for p in probes(word, cwd))


def _device_target(word: Word, cwd: str) -> bool:
    """A disk tool's target: a block device, or a value unknown here (it may be one)."""
    if word.unknown:
        return True
    return _any(word, cwd, block_device)


# --- options ----------------------------------------------------------------------------------


class _Args:
    """A command's arguments split the way GNU tools read them."""

    def __init__(
        self, words: Sequence[Word], with_value: str = "", long_with_value: Iterable[str] = ()
    ):
        self.short: set[str] = set()
        self.long: set[str] = set()
        self.options: list[str] = []
        self.operands: list[Word] = []
        self.values: dict[str, str] = {}
        long_values = set(long_with_value)
        i = 0
        words = list(words)
        while i < len(words):
            word = words[i]
            value = word.value
            if value == "--":
                self.operands.extend(words[i + 1 :])
                break
            if value.startswith("--") and len(value) > 2:
                name, eq, rest = value[2:].partition("=")
                self.long.add(name)
                self.options.append(value)
                if eq:
                    self.values[name] = rest
                elif name in long_values and i + 1 < len(words):
                    self.values[name] = words[i + 1].value
                    i += 1
            elif value.startswith("-") and len(value) > 1 and not word.unknown:
                self.options.append(value)
                for j, flag in enumerate(value[1:], start=1):
                    self.short.add(flag)
                    if flag in with_value:
                        if j < len(value) - 1:
                            self.values[flag] = value[j + 1 :]
                        elif i + 1 < len(words):
                            self.values[flag] = words[i + 1].value
                            i += 1
                        break
            else:
                self.operands.append(word)
            i += 1

    def has(self, short: str = "", *long: str) -> bool:
        return any(c in self.short for c in short) or any(
            any(opt == name or (len(opt) >= 3 and name.startswith(opt)) for opt in self.long)
            for name in long
        )


# --- the classes ----------------------------------------------------------------------------

_WRITES = frozenset({">", ">>", ">|", "&>", "&>>", "<>", ">&", "&>|"})
_TRUNCATES = frozenset({">", ">|", "&>", ">&", "&>|"})
#: ``N<>`` with N an output descriptor: opened for writing, not truncated (``1<>``).
_OVERWRITES = re.compile(r"^[0-9]+<>$")


def _writes(op: str) -> bool:
    return op in _WRITES or _OVERWRITES.match(op) is not None


def _writes_a_value(cmd: Cmd) -> bool:
    """``echo node1``, ``printf '%s\\n' node1``: a known, non-empty line."""
    if cmd.program not in ("echo", "printf") or len(cmd.words) < 2:
        return False
    words = [w for w in cmd.words[1:] if not (cmd.program == "echo" and w.value in ("-n", "-e"))]
    return bool(words) and all(w.literal is not None and w.literal.strip() for w in words)


def _system_paths(cmd: Cmd) -> bool:
    program, cwd = cmd.program, cmd.cwd
    args = cmd.words[1:]
    for op, target in cmd.redirects:
        if (
            (op in _TRUNCATES or (_OVERWRITES.match(op) and program not in ("", ":", "true")))
            and not target.value.isdigit()
            and target.value != "-"
            and _any(target, cwd, critical_file)
        ):
            if _writes_a_value(cmd) and all(p in VALUE_FILES for p in probes(target, cwd)):
                continue
            if (
                program == "cat"
                and len(args) >= 1
                and all(_regular_source(w, cwd) for w in args)
                and all(_replaceable(p) for p in probes(target, cwd))
            ):
                continue  # ``cat fstab.new > /etc/fstab``: replaced whole, as ``cp``
            return True
    if program in ("rm", "unlink") or (
        cmd.words and cmd.words[0].unknown and not cmd.words[0].value
    ):
        parsed = _Args(args)
        recursive = parsed.has("rR", "recursive")
        for word in parsed.operands:
            if recursive and _any(word, cwd, critical_dir):
                return True
            if _any(word, cwd, critical_children) or _any(word, cwd, critical_file):
                return True
        return False
    if program == "find":
        values = [w.value for w in args]
        from knm.core.shellparse import _find_itself, _find_narrowed, _find_starts

        if any(_any(w, cwd, critical_file) for w in _find_outputs(args)):
            return True

        if (
            "-delete" in values
            and _find_itself(values)
            and any(  # each start is deleted too, if it is a file
                _any(w, cwd, critical_file) for w in args if w.value in _find_starts(values)[:8]
            )
        ):
            return True
        if "-delete" in values and not _find_narrowed(values):
            starts = [w for w in args if w.value in _find_starts(values)][:8]
            return any(_any(w, cwd, critical_dir) for w in starts)
        if "-delete" in values:  # ``find /etc -name passwd -delete``
            from knm.core.shellparse import _find_names

            for start in _find_starts(values)[:8]:
                for name in _find_names(values):
                    base = normalize(start, cwd)
                    mids = ("",) if _GLOB.search(name) else ("", "*/")
                    if any(critical_file(normalize(f"{base}/{mid}{name}", cwd)) for mid in mids):
                        return True
        return False
    if program == "rsync":
        parsed = _Args(args, "efT", ("rsh", "exclude", "include", "filter", "temp-dir",
                                     "files-from", "password-file", "log-file"))  # fmt: skip
        if len(parsed.operands) >= 2 and ":" not in parsed.operands[-1].value:
            *sources, into = parsed.operands  # as ``cp``: onto a file, or into a directory
            landed = [into, *filter(None, (_into(into, w) for w in sources))]
            if _overwrites(landed, sources, cwd):
                return True
        if not any(opt.startswith("delete") or opt in ("del", "remove-source-files")
                   for opt in parsed.long) or len(parsed.operands) < 2:  # fmt: skip
            return False
        if "remove-source-files" in parsed.long and any(
            _any(w, cwd, critical_dir) or _any(w, cwd, critical_file) for w in parsed.operands[:-1]
        ):
            return True  # moves the files out of /etc
        dest = parsed.operands[-1]
        if ":" in dest.value:
            return False
        return _any(dest, cwd, critical_dir)
    if program in ("truncate", "shred"):
        parsed = _Args(
            args, "sronc" if program == "truncate" else "ns", ("size", "reference", "iterations")
        )
        return any(_any(w, cwd, critical_file) or _any(w, cwd, critical_dir)
                   for w in parsed.operands)  # fmt: skip
    if program in ("cp", "install", "ln", "mv"):
        parsed = _Args(
            args,
            "tSmogb" if program != "ln" else "tSb",
            ("target-directory", "suffix", "mode", "owner", "group", "backup"),
        )
        if program == "ln" and not parsed.has("f", "force"):
            return False
        target_dir = parsed.values.get("t") or parsed.values.get("target-directory")
        operands = parsed.operands
        dest = [] if target_dir else operands[-1:]
        sources = operands if target_dir else operands[:-1]
        if not parsed.has("T", "no-target-directory") and not (
            program == "install" and parsed.has("d", "directory")
        ):
            # ``cp passwd /etc/``, ``mv -t /etc shadow``: the file lands at DIR/NAME
            directory = Word((target_dir,), target_dir) if target_dir else dest[0] if dest else None
            if directory is not None:
                dest.extend(_into(directory, w) for w in sources if _into(directory, w))
        replaced = program != "ln" and bool(sources)
        if _overwrites(dest, sources if replaced else [], cwd):
            return True
        if program == "mv":
            return any(_any(w, cwd, critical_dir) or _any(w, cwd, critical_file) for w in sources)
        return False
    if program in ("chmod", "chown", "chgrp", "setfacl", "chattr", "chcon"):
        parsed = _Args(args, "" if program != "setfacl" else "mMxX",
                       ("reference", "from", "modify", "set", "remove"))  # fmt: skip
        operands = parsed.operands if program == "setfacl" else parsed.operands[1:]
        if program == "chmod" and parsed.options and not parsed.operands[1:]:
            operands = parsed.operands  # ``chmod -x file``: the mode was an option
        recursive = parsed.has("R", "recursive")
        mode = parsed.operands[0].value if parsed.operands and program == "chmod" else ""
        # ``chmod 000 /bin/*`` breaks a node; ``chmod +x /usr/local/bin/*`` does not.
        takes_away = program in ("setfacl", "chattr") or (
            program == "chmod" and _removes_access(mode) and not _only_removes_write(mode)
        )
        owner = parsed.operands[0].value if parsed.operands else ""
        hardening = (program == "chmod" and _only_hardens(mode)) or (
            program in ("chown", "chgrp") and (_to_root(owner) or _to_service(owner, operands))
        )
        for word in operands:
            if (
                recursive
                and _any(word, cwd, critical_dir)
                and not (
                    hardening
                    and not word.unknown
                    and all(
                        _in_root_tree(p)
                        or (program == "chmod" and _only_removes_write(mode))
                        or (program != "chmod" and _to_service(owner, [word]))
                        for p in probes(word, cwd)
                    )
                )
            ):
                return True
            if takes_away and _any(word, cwd, critical_children):
                return True
            if program == "chmod" and not recursive:
                if _hides_from_others(mode) and _any(word, cwd, lambda p: p in PUBLIC_DIRS):
                    return True  # ``chmod 000 /``, ``chmod 700 /usr``
                if _removes_exec(mode) and _any(word, cwd, _critical_executable):
                    return True  # ``chmod -x /bin/sh``, ``chmod 644 /lib64/ld-linux*``
        return False
    if program == "btrfs":
        return _btrfs_deletes_tree(args, cwd)
    if _overwrites(_output_files(cmd), [], cwd):
        return True  # ``sort -o /etc/passwd``, ``curl -o /etc/shadow URL``
    if program in _COMPRESSORS or program in ("zstd", "lz4"):
        # ``gzip /etc/passwd`` leaves ``/etc/passwd.gz``: the file is gone, as with ``rm``
        parsed = _Args(args, "SbpTFMCL", ("suffix", "threads", "format", "memlimit", "check"))
        if program in ("zstd", "lz4"):
            removes = "rm" in parsed.long
        else:
            removes = not parsed.has("cklt", "stdout", "to-stdout", "keep", "list", "test")
        recursive = parsed.has("r", "recursive")
        return removes and any(
            _any(w, cwd, critical_file) or (recursive and _any(w, cwd, critical_dir))
            for w in parsed.operands
        )
    if program == "fallocate":
        parsed = _Args(args, "lo", ("length", "offset"))
        if parsed.has("pzc", "punch-hole", "zero-range", "collapse-range"):
            return any(_any(w, cwd, critical_file) for w in parsed.operands)  # zeroes content
        return False
    if program == "tar":
        parsed = _Args(args, "fCTX", ("file", "directory", "files-from", "exclude-from"))
        if "remove-files" in parsed.long:
            return any(_any(w, cwd, critical_dir) for w in parsed.operands)
        return False
    if program == "dd":
        return any(
            w.value.startswith("of=") and _any(_strip(w, 3), cwd, critical_file) for w in args
        )
    if program in ("tee", "sponge"):  # ``sponge`` (moreutils) is ``tee`` to one file
        parsed = _Args(args)
        if parsed.has("a", "append"):
            return False
        return any(_any(w, cwd, critical_file) for w in parsed.operands)
    return False


_CLAUSE = re.compile(r"^([ugoa]*)([-+=])([rwxXst]*)$")


def _clauses(mode: str) -> list[tuple[str, str, str]] | None:
    out = []
    for clause in mode.split(","):
        match = _CLAUSE.match(clause)
        if match is None:
            return None
        who, op, perms = match.groups()
        out.append((who or "a", op, perms))
    return out


def _digits(mode: str) -> str | None:
    return (
        mode[-3:].rjust(3, "0") if mode.isdigit() and all(c in "01234567" for c in mode) else None
    )


def _hides_from_others(mode: str) -> bool:
    """The mode takes read or search access away from others."""
    digits = _digits(mode)
    if digits is not None:
        return int(digits[2], 8) & 5 != 5
    clauses = _clauses(mode)
    if clauses is None:
        return bool(mode)
    return any(
        ("o" in who or "a" in who)
        and ((op == "-" and ("r" in perms or "x" in perms)) or (op == "=" and not (
            "r" in perms and ("x" in perms or "X" in perms))))
        for who, op, perms in clauses
    )  # fmt: skip


def _removes_exec(mode: str) -> bool:
    """The mode takes execute access away from someone."""
    digits = _digits(mode)
    if digits is not None:
        return any(int(d, 8) & 1 == 0 for d in digits)
    clauses = _clauses(mode)
    if clauses is None:
        return bool(mode)
    return any((op == "-" and "x" in perms) or (op == "=" and "x" not in perms)
               for _, op, perms in clauses)  # fmt: skip


def _only_removes_write(mode: str) -> bool:
    """``go-w``: write access taken from group and others, nothing else."""
    clauses = _clauses(mode)
    return bool(clauses) and all(
        op == "-" and who and set(who) <= {"g", "o"} and set(perms) <= {"w"}
        for who, op, perms in clauses or ()
    )


def _only_hardens(mode: str) -> bool:
    """The owner keeps read and write and no one else is given write: ``600``, ``644``,
    ``go-rwx``, ``o-r`` (not ``777`` or ``666``: keys and kubeconfigs writable by anyone, which
    sshd and sudo refuse to use)."""
    digits = _digits(mode)
    if digits is not None:
        return int(digits[0], 8) & 6 == 6 and not (int(digits[1], 8) | int(digits[2], 8)) & 2
    clauses = _clauses(mode)
    return bool(clauses) and all(
        op == "-" and set(who) <= {"g", "o"} for who, op, _ in clauses or ()
    )


#: A service's data directory and the user it runs as (``chown -R etcd:etcd /var/lib/etcd`` is
#: the CIS benchmark's step for an etcd run as ``etcd``).
_SERVICE_DIRS = {"/var/lib/etcd": "etcd", "/var/lib/postgresql": "postgres",
                 "/var/lib/mysql": "mysql"}  # fmt: skip


def _to_service(owner: str, operands: Sequence[Word]) -> bool:
    user = owner.partition(":")[0] if ":" in owner else owner.partition(".")[0]
    return bool(operands) and all(
        w.literal is not None and _SERVICE_DIRS.get(normalize(w.literal, "/")) == user
        for w in operands
    )


def _to_root(owner: str) -> bool:
    user, _, group = owner.partition(":") if ":" in owner else owner.partition(".")
    return user in ("root", "0", "") and group in ("root", "0", "") and bool(user or group)


def _removes_access(mode: str) -> bool:
    """Whether a chmod mode can take read or execute access away from the owner."""
    if mode.isdigit():
        return int(mode[-3], 8) < 5 if len(mode) >= 3 else True
    return "-" in mode or "=" in mode


def _strip(word: Word, n: int) -> Word:
    return Word(tuple(a[n:] for a in word.alts), word.text[n:], word.tainted)


_DD_LIKE = frozenset({"dd", "dcfldd", "dc3dd", "sg_dd", "ddpt", "sdd"})
_SYS_REMOVALS = ("/sys/block/*/device/delete", "/sys/class/block/*/device/delete",
                 "/sys/class/scsi_device/*/device/delete", "/sys/bus/*/devices/*/remove",
                 "/sys/bus/scsi/devices/*/delete", "/sys/class/nvme/*/delete_controller",
                 "/sys/bus/pci/devices/*/remove")  # fmt: skip


def _find_outputs(args: Sequence[Word]) -> list[Word]:
    """The files ``find -fprint FILE`` (``-fprint0``, ``-fprintf``, ``-fls``) truncates."""
    return [
        args[i + 1]
        for i, w in enumerate(args[:-1])
        if w.value in ("-fprint", "-fprint0", "-fprintf", "-fls")
    ]


def _sys_removal(path: str) -> bool:
    parts = _parts(path)
    return any(_match(parts, _parts(pattern)) for pattern in _SYS_REMOVALS)


_DISK_WRITERS = frozenset({"shred", "wipe", "scrub", "zerofree", "blkdiscard", "sg_sanitize",
                           "sg_unmap", "sg_write_same"})  # fmt: skip
_PARTED_WRITES = frozenset({"mklabel", "mktable", "mkpart", "mkpartfs", "rm", "resize",
                            "resizepart", "mkfs", "move", "cp", "rescue", "set", "toggle",
                            "disk_set", "disk_toggle", "name", "type"})  # fmt: skip
_SFDISK_READS = (
    "ldsVJgFv",
    "list",
    "dump",
    "show-size",
    "verify",
    "json",
    "show-geometry",
    "list-free",
    "no-act",
    "help",
    "version",
    "list-types",
    "show-pt-geometry",
)
_SGDISK_READ = frozenset({"p", "i", "v", "b", "V", "?", "O", "L", "D", "P", "print", "info",
                          "verify", "backup", "version", "help", "print-mbr", "list-types",
                          "display-alignment", "pretend"})  # fmt: skip
_NVME_WRITES = frozenset({"format", "sanitize", "delete-ns", "detach-ns", "write-zeroes", "write",
                          "write-uncor", "dsm", "security-send", "fw-download", "fw-commit",
                          "set-feature", "ns-rescan"}) - {"ns-rescan"}  # fmt: skip
_HDPARM_WRITES = (
    "security-erase",
    "security-erase-enhanced",
    "security-set-pass",
    "security-disable",
    "trim-sector-ranges",
    "trim-sector-ranges-stdin",
    "write-sector",
    "make-bad-sector",
    "fwdownload",
    "fwdownload-mode3",
    "fwdownload-mode3-max",
    "fwdownload-mode7",
    "dco-restore",
    "dco-setmax",
)
_CRYPT_WRITES = frozenset({"luksformat", "erase", "lukserase", "lukskillslot", "luksremovekey",
                           "luksheaderrestore",
                           "reencrypt", "luksconvertkey", "convert", "repair", "tcryptdump"}
                          - {"tcryptdump"})  # fmt: skip
_MDADM_WRITES = ("zero-superblock", "create", "build", "fail", "remove", "set-faulty", "grow")
_LVM_WRITES = frozenset({"lvremove", "vgremove", "pvremove", "lvreduce", "vgreduce"})
_NON_EXT_TYPES = ("xfs", "btrfs", "vfat", "fat", "msdos", "ntfs", "exfat", "f2fs", "minix",
                  "bfs", "cramfs", "jfs", "reiserfs", "nilfs2", "udf", "swap")  # fmt: skip
_MKFS = re.compile(r"^(?:mkfs(?:\.[\w.-]+)?|mke2fs|mkdosfs|mkntfs|mkexfatfs|mkreiserfs|mkfs_\w+|"
                   r"mkudffs|newfs(?:_\w+)?|mkswap)$")  # fmt: skip


def _block_devices(cmd: Cmd) -> bool:
    program, cwd = cmd.program, cmd.cwd
    args = cmd.words[1:]
    for op, target in cmd.redirects:
        if (
            _writes(op)
            and not target.value.isdigit()
            and target.value != "-"
            and _any(target, cwd, block_device)
        ):
            return True
    if any(_any(w, cwd, _sys_removal) for w in _written_files(cmd)):
        return True  # ``echo 1 > /sys/block/sda/device/delete``, ``| tee ...``: the disk is gone
    if any(_any(w, cwd, block_device) for w in _output_files(cmd)):
        return True  # ``curl -o /dev/sda URL``
    if not program:
        return False
    values = [w.value for w in args]
    if program == "find":
        return any(_any(w, cwd, block_device) for w in _find_outputs(args))
    if program in _DD_LIKE or (program == "qemu-img" and values[:1] == ["dd"]):
        return any(
            w.value.startswith(prefix) and _device_target(_strip(w, len(prefix)), cwd)
            for w in args
            for prefix in ("of=", "wipe=", "hwipe=", "hof=")
        )
    if program == "qemu-img":
        return values[:1] == ["convert"] and _any(args[-1], cwd, block_device)
    if program == "pv":
        target = _Args(args, "LBsNiwHdRo", ("output",)).values
        out = target.get("output") or target.get("o")
        return out is not None and block_device(normalize(out, cwd))
    if program in ("tee", "sponge"):
        return any(_any(w, cwd, block_device) for w in _Args(args).operands)
    if program == "socat":
        return any(_any(w, cwd, block_device) for w in _socat_files(cmd))
    if program in ("cp", "install", "ddrescue", "rsync", "ln"):
        if program == "rsync":  # its -t keeps times, -e names the remote shell
            parsed = _Args(args, "efT", ("rsh", "exclude", "include", "filter", "temp-dir",
                                         "files-from", "password-file", "log-file"))  # fmt: skip
        else:
            parsed = _Args(args, "tmogS", ("target-directory", "mode", "owner", "group", "suffix"))
        if program == "ln":
            return False
        operands = parsed.operands
        target_dir = parsed.values.get("t") or parsed.values.get("target-directory")
        if target_dir:  # ``cp -t /dev sda``: onto /dev/sda
            directory = Word((target_dir,), target_dir)
            return any(_any(w, cwd, block_device) for w in map(_into_each(directory), operands))
        if len(operands) < 2:
            return False
        landed = [operands[-1]]
        if program != "ddrescue":  # ``cp sda /dev/``: onto /dev/sda
            landed.extend(map(_into_each(operands[-1]), operands[:-1]))
        return any(_any(w, cwd, block_device) for w in landed)
    if _MKFS.match(program):
        # Option values (a type, a label) are not devices, so reading them as operands is safe.
        parsed = _Args(args)
        if program == "mkswap":
            return any(_device_target(w, cwd) for w in parsed.operands)
        types = [w.value for w in parsed.operands]
        xfs = program == "mkfs.xfs" or "xfs" in types
        ext = program in ("mke2fs", "mkfs.ext2", "mkfs.ext3", "mkfs.ext4", "mkfs.ext4dev") or (
            program == "mkfs" and not any(t in types for t in _NON_EXT_TYPES)
        )
        if ("n" in parsed.short and ext) or ("N" in parsed.short and xfs):
            return False  # mke2fs -n, mkfs.xfs -N: a dry run (-n means other things elsewhere)
        if "no-act" in parsed.long or "dry-run" in parsed.long:
            return False
        return any(_device_target(w, cwd) for w in parsed.operands if not w.value.isdigit())
    if program == "wipefs":
        parsed = _Args(args, "ot", ("offset", "types", "backup"))
        erases = parsed.has("ao", "all", "offset")
        if not erases or parsed.has("n", "no-act"):
            return False
        return any(_device_target(w, cwd) for w in parsed.operands) or not parsed.operands
    if program in _DISK_WRITERS:
        parsed = _Args(
            args,
            {"shred": "ns", "blkdiscard": "olp", "scrub": "pbsSr"}.get(program, ""),
            ("iterations", "size", "offset", "length", "step", "pattern", "random-source"),
        )
        if parsed.has("", "help", "version") or (program == "shred" and not parsed.operands):
            return False
        # A device named anywhere, even where an option's value is read, is the target.
        return any(_device_target(w, cwd) for w in parsed.operands) or any(
            _any(w, cwd, block_device) for w in args
        )
    if program in ("sg_format", "sg_sanitize"):
        return any(v.startswith(("--format", "-F", "--crypto", "--block", "--overwrite"))
                   for v in values)  # fmt: skip
    if program == "badblocks":
        parsed = _Args(args, "bcdeiopt")
        return "w" in parsed.short and any(_device_target(w, cwd) for w in parsed.operands)
    if program == "sgdisk":
        parsed = _Args(args, "aAbBcdhijlmnNrRtTuU", ("info", "backup", "load-backup"))
        names = parsed.short | parsed.long
        if not names or names <= _SGDISK_READ or "P" in names or "pretend" in names:
            return False
        return any(_device_target(w, cwd) for w in parsed.operands) or any(
            _any(w, cwd, block_device) for w in args
        )
    if program == "sfdisk":
        parsed = _Args(
            args,
            "NoOXYuw",
            (
                "label",
                "label-nested",
                "backup-file",
                "wipe",
                "wipe-partitions",
                "sector-size",
                "unit",
            ),
        )
        short, *long = _SFDISK_READS
        if parsed.has(short, *long):
            return False
        return any(_device_target(w, cwd) for w in parsed.operands)
    if program == "parted":
        parsed = _Args(args, "a", ("align",))
        if parsed.has("lvh", "list", "version", "help"):
            return False
        if not parsed.operands:
            return False
        words = [w.value.lower() for w in parsed.operands[1:]]
        if any(w in _PARTED_WRITES for w in words):
            return True
        device = _device_target(parsed.operands[0], cwd)
        return device and not words and (cmd.stdin.text is not None or cmd.stdin.tainted)
    if program in ("fdisk", "gdisk", "cfdisk", "cgdisk", "sgdisk", "fixparts"):
        parsed = _Args(
            args,
            "bcCHSuLoxtw",
            ("sector-size", "color", "type", "output", "wipe", "wipe-partitions", "units"),
        )
        if parsed.has("lsVhx" if program == "fdisk" else "lVh", "list", "list-details",
                      "getsz", "version", "help"):  # fmt: skip
            return False
        return any(_device_target(w, cwd) for w in parsed.operands)
    if program == "nvme":
        return bool(values) and values[0] in _NVME_WRITES
    if program == "hdparm":
        parsed = _Args(args)
        return any(name in parsed.long for name in _HDPARM_WRITES) or "N" in parsed.short
    if program == "cryptsetup":
        return any(v.lower() in _CRYPT_WRITES for v in values)
    if program in ("integritysetup", "veritysetup"):
        return bool(values) and any(v == "format" for v in values)
    if program == "mdadm":
        parsed = _Args(args)
        if parsed.has("CBG", *_MDADM_WRITES):
            return True
        # ``mdadm /dev/md0 -f DEV -r DEV``: manage mode's short --fail and --remove
        return bool(parsed.short & {"f", "r"}) and not parsed.has(
            "AIDEQXC", "assemble", "incremental", "detail", "examine", "query", "create"
        )
    if program in _LVM_WRITES or (program == "lvm" and values and values[0] in _LVM_WRITES):
        parsed = _Args(args)
        return not parsed.has("th", "test", "help", "version")
    if program == "lvm" and values:
        program, args, values = values[0], args[1:], values[1:]
    if program in ("lvresize", "lvextend"):
        parsed = _Args(args, "Ll", ("size", "extents"))
        sizes = [parsed.values.get(k, "") for k in ("L", "l", "size", "extents")]
        return any(v.startswith("-") for v in sizes)  # a shrink under the filesystem
    if program in ("pvcreate", "vgcreate", "vgextend"):
        parsed = _Args(args, "sMp", ("physicalextentsize", "metadatatype", "maxphysicalvolumes"))
        return parsed.has("fy", "force", "yes") and not parsed.has("t", "test")
    if program == "zpool":
        return bool(values) and (values[0] in ("destroy", "labelclear")
                                 or (values[0] in ("create", "add", "replace", "attach")
                                     and "-f" in values))  # fmt: skip
    if program == "zfs":
        if any(v in ("-h", "--help", "-?") for v in values):
            return False
        if values[:1] in (["rollback"], ["receive"], ["recv"]):
            # rollback throws away what was written since; receive -F rolls back to take it
            return (
                values[0] == "rollback"
                or "-F" in values
                or any(v.startswith("-") and "F" in v for v in values[1:])
            )
        return bool(values) and values[0] == "destroy" and "-n" not in values
    if program == "btrfs":
        return _btrfs_destroys(values)
    if program == "xfs_repair":
        return "-L" in values
    if program == "flashrom":
        parsed = _Args(args, "pcrvlio", ("programmer", "chip", "read", "verify", "layout",
                                         "image", "output"))  # fmt: skip
        return parsed.has("wE", "write", "erase")
    if program == "debugfs":
        parsed = _Args(args, "bsfRdDcz", ("request",))
        return "w" in parsed.short and any(_device_target(w, cwd) for w in parsed.operands)
    if program in ("dmsetup",):
        return bool(values) and values[0] in ("remove_all", "wipe_table")
    if program == "blockdev":
        return False
    return False


_BTRFS_GROUPS = {"filesystem": "filesystem", "device": "device", "replace": "replace",
                 "check": "check", "rescue": "rescue", "subvolume": "subvolume"}  # fmt: skip


def _btrfs_destroys(values: Sequence[str]) -> bool:
    """``btrfs`` subcommands that overwrite a device or throw data away (prefixes allowed, as
    btrfs takes ``btrfs dev add``)."""
    words = [v for v in values if not v.startswith("-")]
    flags = [v for v in values if v.startswith("-")]
    force = any(v in ("-f", "--force") for v in flags)

    def group(i: int, name: str) -> bool:
        return len(words) > i and len(words[i]) >= 2 and name.startswith(words[i])

    if group(0, "check"):
        return any(v in ("--repair", "--init-csum-tree", "--init-extent-tree") for v in flags)
    if group(0, "rescue"):
        return group(1, "zero-log") or group(1, "chunk-recover") or group(1, "clear-uuid-tree")
    if group(0, "replace"):
        return group(1, "start") and force
    if group(0, "device"):
        return group(1, "add") and force
    return False


def _btrfs_deletes_tree(args: Sequence[Word], cwd: str) -> bool:
    """``btrfs subvolume delete PATH`` (``btrfs sub del``) deletes the whole tree at PATH, as
    ``rm -rf PATH`` does: refused where ``rm -rf`` is (``/``, a system directory)."""
    words = [w for w in args if not w.value.startswith("-")]
    if len(words) < 3 or len(words[0].value) < 2 or len(words[1].value) < 2:
        return False
    if not ("subvolume".startswith(words[0].value) and "delete".startswith(words[1].value)):
        return False
    return any(_any(w, cwd, critical_dir) for w in words[2:])


_BENIGN_SIGNALS = frozenset(
    {
        "0",
        "1",
        "HUP",
        "SIGHUP",
        "10",
        "USR1",
        "SIGUSR1",
        "12",
        "USR2",
        "SIGUSR2",
        "CONT",
        "SIGCONT",
        "18",
        "WINCH",
        "SIGWINCH",
        "28",
    }
)


_NUMBER = re.compile(r"^[+-]?[0-9]+$")


def _pid(value: str) -> int | None:
    """The number ``kill`` reads from a pid operand (``-001`` is -1, ``+1`` and ``01`` are 1)."""
    return int(value) if _NUMBER.match(value.strip()) else None


def _kill_all(cmd: Cmd) -> bool:
    program = cmd.program
    args = cmd.words[1:]
    values = [w.value for w in args]
    if program == "kill":
        signal = "TERM"
        pids: list[Word] = []
        i = 0
        while i < len(args):
            value = values[i]
            if not pids and value in ("-l", "-L", "--list", "--table"):
                return False
            if not pids and value in ("-s", "-n", "--signal") and i + 1 < len(args):
                signal = values[i + 1].upper()
                i += 2
                continue
            if value == "--":
                pids.extend(args[i + 1 :])
                break
            if (not pids and signal == "TERM" and value.startswith("-") and _pid(value) != -1) or (
                not pids and value.startswith("-") and value[1:].isalpha()
            ):
                signal = value[1:].upper()
            elif (
                not pids
                and value.startswith("-")
                and value[1:].isdigit()
                and signal == "TERM"
                and (i + 1 < len(args))
            ):
                signal = value[1:]
            else:
                pids.append(args[i])
            i += 1
        for pid in pids:
            if pid.pids:
                return True
            numbers = {_pid(alt) for alt in pid.alts}  # ``-001`` is -1, ``01`` is init
            if -1 in numbers and signal not in ("0", "SIG0"):  # ``-${X:-1}`` too
                return True
            if 1 in numbers and signal.upper() not in _BENIGN_SIGNALS:
                return True
        return False
    if program == "killall5":
        return "--help" not in values
    if (program in ("pkill", "pgrep") and program == "pkill") or program == "skill":
        parsed = _Args(args, "ugGPsFtUc", ("euid", "uid", "group", "parent", "session",
                                           "pidfile", "terminal", "signal"))  # fmt: skip
        patterns = [w.value for w in parsed.operands]
        users = {parsed.values.get(k) for k in ("u", "U", "euid", "uid")} - {None}
        if program == "skill":
            return "root" in patterns or "0" in patterns or bool(users & {"root", "0"})
        if any(matches_everything(p) or p in ("systemd", "init") for p in patterns):
            return True
        if program == "pkill" and parsed.has("v", "inverse"):
            return True  # everything but what the pattern matches
        parent = parsed.values.get("P") or parsed.values.get("parent")
        if program == "pkill" and parent in ("1", "0") and not patterns:
            return True  # every service: the children of init
        return not patterns and bool(users & {"root", "0"})
    if program == "killall":
        parsed = _Args(args, "usoyn", ("user", "signal", "older-than", "younger-than", "ns"))
        names = [w.value for w in parsed.operands]
        if parsed.has("r", "regexp") and any(matches_everything(n) for n in names):
            return True
        if any(n in ("systemd", "init", "/sbin/init") for n in names):
            return True
        user = parsed.values.get("u") or parsed.values.get("user")
        return not names and user in ("root", "0")
    if program == "slay":
        return "root" in values
    if program == "systemctl":
        # ``systemctl kill '*'``, ``systemctl stop '*'``: every unit, sshd and the kubelet too
        operands = [v for v in values if not v.startswith("-")]
        return (
            bool(operands)
            and operands[0] in ("kill", "stop")
            and any(
                _GLOB.search(unit)
                and fnmatch.fnmatchcase("sshd.service", unit)
                and fnmatch.fnmatchcase("systemd-journald.service", unit)
                for unit in operands[1:]
            )
        )
    return False


_SOCAT_FILES = re.compile(r"^(?:(?:FILE|OPEN|CREATE|CREAT|GOPEN):)?(/[^,]*)", re.I)


def _socat_files(cmd: Cmd) -> list[Word]:
    """The files ``socat`` opens (both addresses are written to by default)."""
    if cmd.program != "socat":
        return []
    out = []
    for word in _Args(cmd.words[1:], "", ()).operands:
        match = _SOCAT_FILES.match(word.value)
        if match is not None and not word.unknown:
            out.append(Word((match.group(1),), word.text))
        elif word.unknown and "/" in word.value:
            out.append(word)
    return out


#: Programs that write a file named by an option: (short option letters, long options).
_OUTPUT_OPTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "curl": ("o", ("--output",)), "wget": ("O", ("--output-document",)),
    "sort": ("o", ("--output",)), "shuf": ("o", ("--output",)), "openssl": ("", ("-out",)),
}  # fmt: skip
#: Compressors that replace each file they are given by the compressed one (deleting it).
_COMPRESSORS = frozenset({"gzip", "gunzip", "bzip2", "bunzip2", "xz", "unxz", "lzma", "unlzma",
                          "lzip", "pigz", "unpigz", "compress", "uncompress"})  # fmt: skip


def _output_files(cmd: Cmd) -> list[Word]:
    """The files a program writes whole where an option names them (``sort -o FILE``,
    ``curl -o FILE``, ``wget -O FILE``, ``openssl ... -out FILE``)."""
    options = _OUTPUT_OPTIONS.get(cmd.program)
    if options is None:
        return []
    short, long = options
    args = cmd.words[1:]
    out: list[Word] = []
    for i, word in enumerate(args):
        value = word.value
        following = args[i + 1] if i + 1 < len(args) else None
        if value == "--":
            break
        if value in long:
            if following is not None:
                out.append(following)
            continue
        name = next((n for n in long if value.startswith(n + "=")), None)
        if name is not None:
            out.append(_strip(word, len(name) + 1))
        elif short and value.startswith("-") and not value.startswith("--"):
            at = next((j for j, c in enumerate(value[1:], start=1) if c in short), None)
            if at is not None and at + 1 < len(value):
                out.append(_strip(word, at + 1))  # ``-o/etc/passwd``, ``-sSLo FILE``
            elif at is not None and following is not None:
                out.append(following)
    return out


def _written_files(cmd: Cmd) -> list[Word]:
    """The files a command writes to, however it is spelled: its redirections, ``tee``'s files,
    ``dd of=``, a copy's or link's destination, ``socat``'s addresses."""
    out = [target for op, target in cmd.redirects if _writes(op)]
    out.extend(_socat_files(cmd))
    out.extend(_output_files(cmd))
    args = cmd.words[1:]
    if cmd.program in _DD_LIKE:
        out.extend(_strip(w, 3) for w in args if w.value.startswith("of="))
    elif cmd.program in ("tee", "sponge"):
        out.extend(_Args(args).operands)
    elif cmd.program in ("cp", "install", "ln", "mv", "rsync"):
        operands = _Args(args).operands
        if len(operands) >= 2:
            out.append(operands[-1])
    return out


def _sysrq(cmd: Cmd) -> bool:
    return any(_any(w, cmd.cwd, _is_sysrq) for w in _written_files(cmd))


_COMMAND_CLASSES: tuple[tuple[str, Callable[[Cmd], bool]], ...] = (
    ("system-paths", _system_paths),
    ("block-devices", _block_devices),
    ("kill-all", _kill_all),
    ("sysrq", _sysrq),
)


# --- checking -------------------------------------------------------------------------------

#: Programs some class judges (any command with a redirection or an unknown name is judged too).
_RELEVANT = frozenset(
    {"rm", "unlink", "find", "rsync", "truncate", "shred", "cp", "install", "ln", "mv", "chmod",
     "chown", "chgrp", "setfacl", "chattr", "chcon", "tar", "dd", "tee", "ddrescue",
     "wipefs", "sg_format", "sg_sanitize", "badblocks", "sgdisk", "sfdisk", "parted", "fdisk",
     "gdisk", "cfdisk", "cgdisk", "fixparts", "nvme", "hdparm", "cryptsetup", "mdadm", "lvm",
     "lvresize", "lvextend", "zpool", "zfs", "debugfs", "dmsetup", "kill", "killall5", "pkill",
     "skill", "killall", "slay", ":", "socat", "qemu-img", "pv", "integritysetup",
     "veritysetup", "pvcreate", "vgcreate", "vgextend", "btrfs", "xfs_repair", "flashrom",
     "systemctl", "sponge", "curl", "wget", "sort", "shuf", "openssl", "fallocate", "zstd", "lz4"}
) | _COMPRESSORS | _DISK_WRITERS | _LVM_WRITES | _DD_LIKE  # fmt: skip


def _glob_programs(cmd: Cmd) -> list[Cmd]:
    """A command whose name is a glob, as each program it may name that some class judges
    (and as it is)."""
    out = [cmd]
    for name in sorted(_RELEVANT):
        if len(out) > 16:
            break
        if fnmatch.fnmatchcase(name, cmd.program):
            words = [Word((name,), cmd.words[0].text), *cmd.words[1:]]
            out.append(Cmd(words, cmd.written, cmd.redirects, cmd.stdin, cmd.cwd,
                           cmd.asynchronous))  # fmt: skip
    return out


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
        if _GLOB.search(cmd.program):  # ``/usr/bin/r? -rf /``: any program the glob names
            commands.extend(_glob_programs(cmd))
        else:
            commands.append(cmd)
    for cmd in commands:
        relevant = (
            cmd.program in _RELEVANT
            or bool(cmd.redirects)
            or bool(cmd.words and cmd.words[0].unknown)
            or _MKFS.match(cmd.program) is not None
        )
        if not relevant and not sited:
            continue  # most commands of a long script: nothing to test
        views = dict.fromkeys((cmd.written.strip(), cmd.text)) if sited else {}
        excepted = any(regex.search(view) for regex in allow for view in views)
        if relevant and not excepted:
            for name, test in _COMMAND_CLASSES:
                if name not in skip and test(cmd):
                    redirected = any(_writes(op) for op, _ in cmd.redirects)
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
