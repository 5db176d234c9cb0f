"""The guard-rail's built-in classes: what each judges a command by (``knm.core.policy`` applies
them to every command ``knm.core.shellparse`` finds a text would run)."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Sequence

from knm.core.shell.options import Args
from knm.core.shell.paths import (
    GLOB,
    PUBLIC_DIRS,
    VALUE_FILES,
    any_probe,
    block_device,
    critical_children,
    critical_dir,
    critical_executable,
    critical_file,
    device_target,
    in_root_tree,
    into_each,
    is_sysrq,
    landing,
    match_parts,
    overwrites,
    path_parts,
    probes,
    regular_source,
    replaceable,
)
from knm.core.shell.values import Cmd, Word, normalize
from knm.core.shellparse import matches_everything

_WRITES = frozenset({">", ">>", ">|", "&>", "&>>", "<>", ">&", "&>|"})
_TRUNCATES = frozenset({">", ">|", "&>", ">&", "&>|"})
#: ``N<>`` with N an output descriptor: opened for writing, not truncated (``1<>``).
_OVERWRITES = re.compile(r"^[0-9]+<>$")


def writes(op: str) -> bool:
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
            and any_probe(target, cwd, critical_file)
        ):
            if _writes_a_value(cmd) and all(p in VALUE_FILES for p in probes(target, cwd)):
                continue
            if (
                program == "cat"
                and len(args) >= 1
                and all(regular_source(w, cwd) for w in args)
                and all(replaceable(p) for p in probes(target, cwd))
            ):
                continue  # ``cat fstab.new > /etc/fstab``: replaced whole, as ``cp``
            return True
    if program in ("rm", "unlink") or (
        cmd.words and cmd.words[0].unknown and not cmd.words[0].value
    ):
        parsed = Args(args)
        recursive = parsed.has("rR", "recursive")
        for word in parsed.operands:
            if recursive and any_probe(word, cwd, critical_dir):
                return True
            if any_probe(word, cwd, critical_children) or any_probe(word, cwd, critical_file):
                return True
        return False
    if program == "find":
        values = [w.value for w in args]
        from knm.core.shellparse import _find_itself, _find_narrowed, _find_starts

        if any(any_probe(w, cwd, critical_file) for w in _find_outputs(args)):
            return True

        if (
            "-delete" in values
            and _find_itself(values)
            and any(  # each start is deleted too, if it is a file
                any_probe(w, cwd, critical_file)
                for w in args
                if w.value in _find_starts(values)[:8]
            )
        ):
            return True
        if "-delete" in values and not _find_narrowed(values):
            starts = [w for w in args if w.value in _find_starts(values)][:8]
            return any(any_probe(w, cwd, critical_dir) for w in starts)
        if "-delete" in values:  # ``find /etc -name passwd -delete``
            from knm.core.shellparse import _find_names

            for start in _find_starts(values)[:8]:
                for name in _find_names(values):
                    base = normalize(start, cwd)
                    mids = ("",) if GLOB.search(name) else ("", "*/")
                    if any(critical_file(normalize(f"{base}/{mid}{name}", cwd)) for mid in mids):
                        return True
        return False
    if program == "rsync":
        parsed = Args(args, "efT", ("rsh", "exclude", "include", "filter", "temp-dir",
                                     "files-from", "password-file", "log-file"))  # fmt: skip
        if len(parsed.operands) >= 2 and ":" not in parsed.operands[-1].value:
            *sources, into = parsed.operands  # as ``cp``: onto a file, or into a directory
            landed = [into, *filter(None, (landing(into, w) for w in sources))]
            if overwrites(landed, sources, cwd):
                return True
        if not any(opt.startswith("delete") or opt in ("del", "remove-source-files")
                   for opt in parsed.long) or len(parsed.operands) < 2:  # fmt: skip
            return False
        if "remove-source-files" in parsed.long and any(
            any_probe(w, cwd, critical_dir) or any_probe(w, cwd, critical_file)
            for w in parsed.operands[:-1]
        ):
            return True  # moves the files out of /etc
        dest = parsed.operands[-1]
        if ":" in dest.value:
            return False
        return any_probe(dest, cwd, critical_dir)
    if program in ("truncate", "shred"):
        parsed = Args(
            args, "sronc" if program == "truncate" else "ns", ("size", "reference", "iterations")
        )
        return any(any_probe(w, cwd, critical_file) or any_probe(w, cwd, critical_dir)
                   for w in parsed.operands)  # fmt: skip
    if program in ("cp", "install", "ln", "mv"):
        parsed = Args(
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
                dest.extend(landing(directory, w) for w in sources if landing(directory, w))
        replaced = program != "ln" and bool(sources)
        if overwrites(dest, sources if replaced else [], cwd):
            return True
        if program == "mv":
            return any(
                any_probe(w, cwd, critical_dir) or any_probe(w, cwd, critical_file) for w in sources
            )
        return False
    if program in ("chmod", "chown", "chgrp", "setfacl", "chattr", "chcon"):
        parsed = Args(args, "" if program != "setfacl" else "mMxX",
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
                and any_probe(word, cwd, critical_dir)
                and not (
                    hardening
                    and not word.unknown
                    and all(
                        in_root_tree(p)
                        or (program == "chmod" and _only_removes_write(mode))
                        or (program != "chmod" and _to_service(owner, [word]))
                        for p in probes(word, cwd)
                    )
                )
            ):
                return True
            if takes_away and any_probe(word, cwd, critical_children):
                return True
            if program == "chmod" and not recursive:
                if _hides_from_others(mode) and any_probe(word, cwd, lambda p: p in PUBLIC_DIRS):
                    return True  # ``chmod 000 /``, ``chmod 700 /usr``
                if _removes_exec(mode) and any_probe(word, cwd, critical_executable):
                    return True  # ``chmod -x /bin/sh``, ``chmod 644 /lib64/ld-linux*``
        return False
    if program == "btrfs":
        return _btrfs_deletes_tree(args, cwd)
    if overwrites(_output_files(cmd), [], cwd):
        return True  # ``sort -o /etc/passwd``, ``curl -o /etc/shadow URL``
    if program in COMPRESSORS or program in ("zstd", "lz4"):
        # ``gzip /etc/passwd`` leaves ``/etc/passwd.gz``: the file is gone, as with ``rm``
        parsed = Args(args, "SbpTFMCL", ("suffix", "threads", "format", "memlimit", "check"))
        if program in ("zstd", "lz4"):
            removes = "rm" in parsed.long
        else:
            removes = not parsed.has("cklt", "stdout", "to-stdout", "keep", "list", "test")
        recursive = parsed.has("r", "recursive")
        return removes and any(
            any_probe(w, cwd, critical_file) or (recursive and any_probe(w, cwd, critical_dir))
            for w in parsed.operands
        )
    if program == "fallocate":
        parsed = Args(args, "lo", ("length", "offset"))
        if parsed.has("pzc", "punch-hole", "zero-range", "collapse-range"):
            return any(any_probe(w, cwd, critical_file) for w in parsed.operands)  # zeroes content
        return False
    if program == "tar":
        parsed = Args(args, "fCTX", ("file", "directory", "files-from", "exclude-from"))
        if "remove-files" in parsed.long:
            return any(any_probe(w, cwd, critical_dir) for w in parsed.operands)
        return False
    if program == "dd":
        return any(
            w.value.startswith("of=") and any_probe(_strip(w, 3), cwd, critical_file) for w in args
        )
    if program in ("tee", "sponge"):  # ``sponge`` (moreutils) is ``tee`` to one file
        parsed = Args(args)
        if parsed.has("a", "append"):
            return False
        return any(any_probe(w, cwd, critical_file) for w in parsed.operands)
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


DD_LIKE = frozenset({"dd", "dcfldd", "dc3dd", "sg_dd", "ddpt", "sdd"})
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
    parts = path_parts(path)
    return any(match_parts(parts, path_parts(pattern)) for pattern in _SYS_REMOVALS)


DISK_WRITERS = frozenset({"shred", "wipe", "scrub", "zerofree", "blkdiscard", "sg_sanitize",
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
LVM_WRITES = frozenset({"lvremove", "vgremove", "pvremove", "lvreduce", "vgreduce"})
_NON_EXT_TYPES = ("xfs", "btrfs", "vfat", "fat", "msdos", "ntfs", "exfat", "f2fs", "minix",
                  "bfs", "cramfs", "jfs", "reiserfs", "nilfs2", "udf", "swap")  # fmt: skip
MKFS = re.compile(r"^(?:mkfs(?:\.[\w.-]+)?|mke2fs|mkdosfs|mkntfs|mkexfatfs|mkreiserfs|mkfs_\w+|"
                   r"mkudffs|newfs(?:_\w+)?|mkswap)$")  # fmt: skip


def _block_devices(cmd: Cmd) -> bool:
    program, cwd = cmd.program, cmd.cwd
    args = cmd.words[1:]
    for op, target in cmd.redirects:
        if (
            writes(op)
            and not target.value.isdigit()
            and target.value != "-"
            and any_probe(target, cwd, block_device)
        ):
            return True
    if any(any_probe(w, cwd, _sys_removal) for w in _written_files(cmd)):
        return True  # ``echo 1 > /sys/block/sda/device/delete``, ``| tee ...``: the disk is gone
    if any(any_probe(w, cwd, block_device) for w in _output_files(cmd)):
        return True  # ``curl -o /dev/sda URL``
    if not program:
        return False
    values = [w.value for w in args]
    if program == "find":
        return any(any_probe(w, cwd, block_device) for w in _find_outputs(args))
    if program in DD_LIKE or (program == "qemu-img" and values[:1] == ["dd"]):
        return any(
            w.value.startswith(prefix) and device_target(_strip(w, len(prefix)), cwd)
            for w in args
            for prefix in ("of=", "wipe=", "hwipe=", "hof=")
        )
    if program == "qemu-img":
        return values[:1] == ["convert"] and any_probe(args[-1], cwd, block_device)
    if program == "pv":
        target = Args(args, "LBsNiwHdRo", ("output",)).values
        out = target.get("output") or target.get("o")
        return out is not None and block_device(normalize(out, cwd))
    if program in ("tee", "sponge"):
        return any(any_probe(w, cwd, block_device) for w in Args(args).operands)
    if program == "socat":
        return any(any_probe(w, cwd, block_device) for w in _socat_files(cmd))
    if program in ("cp", "install", "ddrescue", "rsync", "ln"):
        if program == "rsync":  # its -t keeps times, -e names the remote shell
            parsed = Args(args, "efT", ("rsh", "exclude", "include", "filter", "temp-dir",
                                         "files-from", "password-file", "log-file"))  # fmt: skip
        else:
            parsed = Args(args, "tmogS", ("target-directory", "mode", "owner", "group", "suffix"))
        if program == "ln":
            return False
        operands = parsed.operands
        target_dir = parsed.values.get("t") or parsed.values.get("target-directory")
        if target_dir:  # ``cp -t /dev sda``: onto /dev/sda
            directory = Word((target_dir,), target_dir)
            return any(any_probe(w, cwd, block_device) for w in map(into_each(directory), operands))
        if len(operands) < 2:
            return False
        landed = [operands[-1]]
        if program != "ddrescue":  # ``cp sda /dev/``: onto /dev/sda
            landed.extend(map(into_each(operands[-1]), operands[:-1]))
        return any(any_probe(w, cwd, block_device) for w in landed)
    if MKFS.match(program):
        # Option values (a type, a label) are not devices, so reading them as operands is safe.
        parsed = Args(args)
        if program == "mkswap":
            return any(device_target(w, cwd) for w in parsed.operands)
        types = [w.value for w in parsed.operands]
        xfs = program == "mkfs.xfs" or "xfs" in types
        ext = program in ("mke2fs", "mkfs.ext2", "mkfs.ext3", "mkfs.ext4", "mkfs.ext4dev") or (
            program == "mkfs" and not any(t in types for t in _NON_EXT_TYPES)
        )
        if ("n" in parsed.short and ext) or ("N" in parsed.short and xfs):
            return False  # mke2fs -n, mkfs.xfs -N: a dry run (-n means other things elsewhere)
        if "no-act" in parsed.long or "dry-run" in parsed.long:
            return False
        return any(device_target(w, cwd) for w in parsed.operands if not w.value.isdigit())
    if program == "wipefs":
        parsed = Args(args, "ot", ("offset", "types", "backup"))
        erases = parsed.has("ao", "all", "offset")
        if not erases or parsed.has("n", "no-act"):
            return False
        return any(device_target(w, cwd) for w in parsed.operands) or not parsed.operands
    if program in DISK_WRITERS:
        parsed = Args(
            args,
            {"shred": "ns", "blkdiscard": "olp", "scrub": "pbsSr"}.get(program, ""),
            ("iterations", "size", "offset", "length", "step", "pattern", "random-source"),
        )
        if parsed.has("", "help", "version") or (program == "shred" and not parsed.operands):
            return False
        # A device named anywhere, even where an option's value is read, is the target.
        return any(device_target(w, cwd) for w in parsed.operands) or any(
            any_probe(w, cwd, block_device) for w in args
        )
    if program in ("sg_format", "sg_sanitize"):
        return any(v.startswith(("--format", "-F", "--crypto", "--block", "--overwrite"))
                   for v in values)  # fmt: skip
    if program == "badblocks":
        parsed = Args(args, "bcdeiopt")
        return "w" in parsed.short and any(device_target(w, cwd) for w in parsed.operands)
    if program == "sgdisk":
        parsed = Args(args, "aAbBcdhijlmnNrRtTuU", ("info", "backup", "load-backup"))
        names = parsed.short | parsed.long
        if not names or names <= _SGDISK_READ or "P" in names or "pretend" in names:
            return False
        return any(device_target(w, cwd) for w in parsed.operands) or any(
            any_probe(w, cwd, block_device) for w in args
        )
    if program == "sfdisk":
        parsed = Args(
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
        return any(device_target(w, cwd) for w in parsed.operands)
    if program == "parted":
        parsed = Args(args, "a", ("align",))
        if parsed.has("lvh", "list", "version", "help"):
            return False
        if not parsed.operands:
            return False
        words = [w.value.lower() for w in parsed.operands[1:]]
        if any(w in _PARTED_WRITES for w in words):
            return True
        device = device_target(parsed.operands[0], cwd)
        return device and not words and (cmd.stdin.text is not None or cmd.stdin.tainted)
    if program in ("fdisk", "gdisk", "cfdisk", "cgdisk", "sgdisk", "fixparts"):
        parsed = Args(
            args,
            "bcCHSuLoxtw",
            ("sector-size", "color", "type", "output", "wipe", "wipe-partitions", "units"),
        )
        if parsed.has("lsVhx" if program == "fdisk" else "lVh", "list", "list-details",
                      "getsz", "version", "help"):  # fmt: skip
            return False
        return any(device_target(w, cwd) for w in parsed.operands)
    if program == "nvme":
        return bool(values) and values[0] in _NVME_WRITES
    if program == "hdparm":
        parsed = Args(args)
        return any(name in parsed.long for name in _HDPARM_WRITES) or "N" in parsed.short
    if program == "cryptsetup":
        return any(v.lower() in _CRYPT_WRITES for v in values)
    if program in ("integritysetup", "veritysetup"):
        return bool(values) and any(v == "format" for v in values)
    if program == "mdadm":
        parsed = Args(args)
        if parsed.has("CBG", *_MDADM_WRITES):
            return True
        # ``mdadm /dev/md0 -f DEV -r DEV``: manage mode's short --fail and --remove
        return bool(parsed.short & {"f", "r"}) and not parsed.has(
            "AIDEQXC", "assemble", "incremental", "detail", "examine", "query", "create"
        )
    if program in LVM_WRITES or (program == "lvm" and values and values[0] in LVM_WRITES):
        parsed = Args(args)
        return not parsed.has("th", "test", "help", "version")
    if program == "lvm" and values:
        program, args, values = values[0], args[1:], values[1:]
    if program in ("lvresize", "lvextend"):
        parsed = Args(args, "Ll", ("size", "extents"))
        sizes = [parsed.values.get(k, "") for k in ("L", "l", "size", "extents")]
        return any(v.startswith("-") for v in sizes)  # a shrink under the filesystem
    if program in ("pvcreate", "vgcreate", "vgextend"):
        parsed = Args(args, "sMp", ("physicalextentsize", "metadatatype", "maxphysicalvolumes"))
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
        parsed = Args(args, "pcrvlio", ("programmer", "chip", "read", "verify", "layout",
                                         "image", "output"))  # fmt: skip
        return parsed.has("wE", "write", "erase")
    if program == "debugfs":
        parsed = Args(args, "bsfRdDcz", ("request",))
        return "w" in parsed.short and any(device_target(w, cwd) for w in parsed.operands)
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
    return any(any_probe(w, cwd, critical_dir) for w in words[2:])


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
        parsed = Args(args, "ugGPsFtUc", ("euid", "uid", "group", "parent", "session",
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
        parsed = Args(args, "usoyn", ("user", "signal", "older-than", "younger-than", "ns"))
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
                GLOB.search(unit)
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
    for word in Args(cmd.words[1:], "", ()).operands:
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
COMPRESSORS = frozenset({"gzip", "gunzip", "bzip2", "bunzip2", "xz", "unxz", "lzma", "unlzma",
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
    out = [target for op, target in cmd.redirects if writes(op)]
    out.extend(_socat_files(cmd))
    out.extend(_output_files(cmd))
    args = cmd.words[1:]
    if cmd.program in DD_LIKE:
        out.extend(_strip(w, 3) for w in args if w.value.startswith("of="))
    elif cmd.program in ("tee", "sponge"):
        out.extend(Args(args).operands)
    elif cmd.program in ("cp", "install", "ln", "mv", "rsync"):
        operands = Args(args).operands
        if len(operands) >= 2:
            out.append(operands[-1])
    return out


def _sysrq(cmd: Cmd) -> bool:
    return any(any_probe(w, cmd.cwd, is_sysrq) for w in _written_files(cmd))


COMMAND_CLASSES: tuple[tuple[str, Callable[[Cmd], bool]], ...] = (
    ("system-paths", _system_paths),
    ("block-devices", _block_devices),
    ("kill-all", _kill_all),
    ("sysrq", _sysrq),
)


#: Programs some class judges (any command with a redirection or an unknown name is judged too).
JUDGED_PROGRAMS = frozenset(
    {"rm", "unlink", "find", "rsync", "truncate", "shred", "cp", "install", "ln", "mv", "chmod",
     "chown", "chgrp", "setfacl", "chattr", "chcon", "tar", "dd", "tee", "ddrescue",
     "wipefs", "sg_format", "sg_sanitize", "badblocks", "sgdisk", "sfdisk", "parted", "fdisk",
     "gdisk", "cfdisk", "cgdisk", "fixparts", "nvme", "hdparm", "cryptsetup", "mdadm", "lvm",
     "lvresize", "lvextend", "zpool", "zfs", "debugfs", "dmsetup", "kill", "killall5", "pkill",
     "skill", "killall", "slay", ":", "socat", "qemu-img", "pv", "integritysetup",
     "veritysetup", "pvcreate", "vgcreate", "vgextend", "btrfs", "xfs_repair", "flashrom",
     "systemctl", "sponge", "curl", "wget", "sort", "shuf", "openssl", "fallocate", "zstd", "lz4"}
) | COMPRESSORS | DISK_WRITERS | LVM_WRITES | DD_LIKE  # fmt: skip


def as_each_program(cmd: Cmd) -> list[Cmd]:
    """A command whose name is a glob, as each program it may name that some class judges
    (and as it is)."""
    out = [cmd]
    for name in sorted(JUDGED_PROGRAMS):
        if len(out) > 16:
            break
        if fnmatch.fnmatchcase(name, cmd.program):
            words = [Word((name,), cmd.words[0].text), *cmd.words[1:]]
            out.append(Cmd(words, cmd.written, cmd.redirects, cmd.stdin, cmd.cwd,
                           cmd.asynchronous))  # fmt: skip
    return out


def judged(cmd: Cmd) -> bool:
    """Whether any class may judge ``cmd``: most commands of a long script are of none."""
    return (
        cmd.program in JUDGED_PROGRAMS
        or bool(cmd.redirects)
        or bool(cmd.words and cmd.words[0].unknown)
        or MKFS.match(cmd.program) is not None
    )
