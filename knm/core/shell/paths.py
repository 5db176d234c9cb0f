"""The paths a node cannot lose, for the guard-rail's ``system-paths``, ``block-devices`` and
``sysrq`` classes: the system and Kubernetes directories, the files whose loss stops a node, block
devices, and how a word (every value it may take) is probed against them."""

from __future__ import annotations

import fnmatch
import functools
import posixpath
import re
from collections.abc import Callable, Sequence

from knm.core.shell.values import U, Word, normalize

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
GLOB = re.compile(r"[*?\[]")


def path_parts(path: str) -> tuple[str, ...]:
    return tuple(p for p in path.split("/") if p)


def match_parts(pattern: Sequence[str], name: Sequence[str]) -> bool:
    """Component-wise glob match: ``pattern`` may hold globs (a command's operand), ``name``
    too (a table entry such as ``/etc/kubernetes/*.conf``)."""
    if len(pattern) != len(name):
        return False
    for p, n in zip(pattern, name, strict=True):
        if p == n:
            continue
        if GLOB.search(p) and fnmatch.fnmatchcase(n, p):
            continue
        if GLOB.search(n) and (fnmatch.fnmatchcase(p, n) or _globs_overlap(p, n)):
            continue
        return False
    return True


def _globs_overlap(a: str, b: str) -> bool:
    """Whether two globs may name one file: their literal starts and ends agree (``*.bak`` and
    ``*.conf`` cannot; ``ca.*`` and ``*.key`` may)."""
    if not GLOB.search(a) or not GLOB.search(b):
        return False
    head_a, head_b = GLOB.split(a, 1)[0], GLOB.split(b, 1)[0]
    tail_a, tail_b = re.split(r"[*?\]]", a)[-1], re.split(r"[*?\]]", b)[-1]
    return (head_a.startswith(head_b) or head_b.startswith(head_a)) and (
        tail_a.endswith(tail_b) or tail_b.endswith(tail_a)
    )


def _matches_all(component: str) -> bool:
    return bool(GLOB.search(component)) and all(
        fnmatch.fnmatchcase(name, component) for name in ("a", "etc", "lib64", "x.conf")
    )


#: Directories every part of which is critical (deleting any of it breaks the node).
CRITICAL_TREES: tuple[str, ...] = ("/var/lib/etcd", "/boot/grub", "/boot/grub2", "/boot/efi")
_TREE_PARTS = tuple(tuple(t.strip("/").split("/")) for t in CRITICAL_TREES)


@functools.lru_cache(maxsize=4096)
def critical_dir(path: str) -> str | None:
    """The critical directory ``path`` names, or whose whole content it globs (``/etc/*``)."""
    parts = path_parts(path)
    if not parts:
        return "/"
    for tree in _TREE_PARTS:
        if len(parts) > len(tree) and match_parts(parts[: len(tree)], tree):
            return "/" + "/".join(tree)
    for crit in _DIR_PARTS:
        if match_parts(parts, crit):
            return "/" + "/".join(crit)
    for crit in _FILE_PARTS:  # a directory holding a critical file (``/lib/x86_64-linux-gnu``)
        if len(parts) < len(crit) and match_parts(parts, crit[: len(parts)]):
            return "/" + "/".join(crit[: len(parts)])
    return critical_children(path)


@functools.lru_cache(maxsize=4096)
def critical_children(path: str) -> str | None:
    """``path`` globs the whole content of a critical directory (``/usr/bin/*``, ``/*``)."""
    parts = path_parts(path)
    if not parts or not _matches_all(parts[-1]):
        return None
    parent = parts[:-1]
    if not parent:
        return "/*"
    for crit in _DIR_PARTS:
        if match_parts(parent, crit):
            return "/" + "/".join(crit) + "/*"
    return None


@functools.lru_cache(maxsize=4096)
def _listed_file(path: str) -> str | None:
    parts = path_parts(path)
    for crit in _FILE_PARTS:
        if match_parts(parts, crit):
            return "/" + "/".join(crit)
    return None


def _in_critical_tree(path: str) -> str | None:
    """The critical tree ``path`` lies inside (``/var/lib/etcd/member/snap/db``), as a glob."""
    parts = path_parts(path)
    for tree in _TREE_PARTS:
        if len(parts) > len(tree) and match_parts(parts[: len(tree)], tree):
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
def replaceable(path: str) -> bool:
    """A critical file a copy of a regular file may replace whole: a listed config, or a file
    inside a critical tree (a restore from a backup; not its emptying or deletion)."""
    parts = path_parts(path)
    if GLOB.search(path):
        return False
    if _in_critical_tree(path) and not _listed_file(path):
        return True
    return any(match_parts(parts, crit) for crit in _REPLACEABLE_PARTS)


def landing(directory: Word, source: Word) -> Word | None:
    """Where a copy, move or link of ``source`` into ``directory`` lands (``DIR/NAME``), when
    the source's name is known."""
    names = {posixpath.basename(alt.rstrip("/")) for alt in source.alts}
    if not names or any(not n or U in n or n in (".", "..") for n in names):
        return None
    alts = tuple(f"{d.rstrip('/')}/{n}" for d in directory.alts for n in sorted(names))
    return directory.with_alts(alts[:32])


def into_each(directory: Word) -> Callable[[Word], Word]:
    """``landing`` for ``map``: a source whose name is unknown lands nowhere known (the
    directory itself stands in)."""
    return lambda source: landing(directory, source) or directory


def overwrites(targets: Sequence[Word], sources: Sequence[Word], cwd: str) -> bool:
    """Writing ``targets`` whole from ``sources`` destroys a critical file: one not replaced
    whole from known regular files (no sources: the content is unknown or empty)."""
    replaced = bool(sources) and all(regular_source(w, cwd) for w in sources)
    return any(
        any_probe(w, cwd, critical_file)
        and not (replaced and all(replaceable(p) for p in probes(w, cwd)))
        for w in targets
    )


def critical_executable(path: str) -> bool:
    """A critical file programs are run or loaded from (a shell, init, the loader, libc)."""
    crit = _listed_file(path)
    return crit is not None and (
        "/bin/" in crit or "/sbin/" in crit or "/lib" in crit or crit.endswith("/init")
    )


def in_root_tree(path: str) -> bool:
    return any(path == t or path.startswith(t + "/") for t in ROOT_TREES)


def regular_source(word: Word, cwd: str) -> bool:
    """A copy's source that is a known regular file: not a device, not a pipe, not unknown."""
    if word.unknown or word.tainted or GLOB.search(word.value):
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
    parts = path_parts(path)
    if len(parts) >= 2 and parts[1] in _NOT_DEVICE_DIRS:
        return False
    if GLOB.search(path):
        return any(match_parts(parts, path_parts(sample)) for sample in _DEVICE_SAMPLES) or any(
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


def is_sysrq(path: str) -> bool:
    return match_parts(path_parts(path), ("proc", "sysrq-trigger"))


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


def any_probe(word: Word, cwd: str, test: Callable[[str], object]) -> bool:
    return any(test(p) for p in probes(word, cwd))


def device_target(word: Word, cwd: str) -> bool:
    """A disk tool's target: a block device, or a value unknown here (it may be one)."""
    if word.unknown:
        return True
    return any_probe(word, cwd, block_device)
