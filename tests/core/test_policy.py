"""The dangerous-command policy: a guard-rail against node-destroying commands, not a sandbox.

The corpora below are the contract: everything in DANGEROUS must be blocked wherever it
hides, everything in HARMLESS must pass, because an over-eager guard-rail gets switched off.
"""

from __future__ import annotations

import shlex

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from knm.core.policy import BUILTIN_RULES, DenyRule, Violation, check_command, check_script

DANGEROUS: list[str] = [
    # rm: flag spellings
    "rm -rf /",
    "rm -fr /",
    "rm -Rf /",
    "rm -r -f /",
    "rm --recursive --force /",
    "rm -rfv /",
    "rm -r --no-preserve-root /",
    "rm -rf --no-preserve-root /",
    "rm / -rf",
    "rm -rf -- /",
    "rm --rec --force /",
    "rm -r /",
    # rm: targets
    "rm -rf /*",
    "rm -rf ~",
    "rm -rf ~/",
    "rm -rf $HOME",
    'rm -rf "$HOME"',
    "rm -rf ${HOME}/*",
    "rm -rf /etc",
    "rm -rf /usr/",
    "rm -rf /var/*",
    "rm -rf /boot /tmp/x",
    "rm -rf //",
    "rm -rf /tmp/../etc",
    "rm -rf /{etc,tmp}",
    "rm -rf /e*",
    # rm: quoting and program spelling
    "rm -rf '/'",
    'rm -rf "/"',
    "rm -rf \\/",
    "rm -rf $'/'",
    "/bin/rm -rf /",
    "\\rm -rf /",
    "r''m -rf /",
    "rm -rf '/'\"\"",
    "sh -c 'sh -c '\"'\"'rm -rf /'\"'\"''",
    # prefixes
    "sudo rm -rf /",
    "sudo -u root -E -n rm -rf /",
    "sudo -S -- rm -rf /etc",
    "env rm -rf /",
    "env -i -u BAR FOO=1 rm -rf /",
    "FOO=1 BAR=2 rm -rf /",
    "nohup rm -rf / &",
    "timeout 10 rm -rf /",
    "timeout -s KILL -k 5 30s rm -rf /",
    "nice -n 19 rm -rf /",
    "ionice -c3 rm -rf /",
    "stdbuf -oL rm -rf /",
    "exec rm -rf /",
    "command rm -rf /",
    "builtin rm -rf /",
    "time rm -rf /",
    "sudo env FOO=1 nice -n 5 timeout 5 nohup rm -rf /",
    "nsenter -t 1 -m -u -i -n -p -- rm -rf /",
    "env -S 'rm -rf /'",
    # structure
    "ls | rm -rf /",
    "true; rm -rf /",
    "true && rm -rf /",
    "false || rm -rf /",
    "ls\nrm -rf /",
    "(cd /tmp; rm -rf /)",
    "{ rm -rf /; }",
    "echo $(rm -rf /)",
    'echo "$(rm -rf /)"',
    "echo `rm -rf /`",
    "x=$(rm -rf /usr)",
    "cat <(rm -rf /)",
    "if true; then rm -rf /; fi",
    "for d in a b; do rm -rf /; done",
    "case $x in a) rm -rf /;; esac",
    "[[ -d /tmp ]] && rm -rf /",
    "echo $((1 + 2)); rm -rf /",
    # nested code
    'bash -c "rm -rf /"',
    "sh -c 'rm -rf /'",
    "zsh -c 'rm -rf /'",
    "dash -c 'rm -rf /'",
    "/bin/bash -xc 'rm -rf /'",
    "bash -c \"sh -c 'rm -rf /'\"",
    "sudo bash -c 'cd /tmp && rm -rf /'",
    "su -c 'rm -rf /'",
    'eval "rm -rf /"',
    "eval rm -rf /",
    "echo / | xargs rm -rf /",
    "ls | xargs -n 1 -P4 sh -c 'rm -rf /'",
    "echo 'rm -rf /' | sh",
    "printf 'rm -rf /\\n' | bash",
    "bash <<EOF\nrm -rf /\nEOF\n",
    "bash <<< 'rm -rf /'",
    # filesystems and devices
    "mkfs /dev/sda1",
    "mkfs.ext4 /dev/sda1",
    "mkfs.xfs -f /dev/nvme0n1p1",
    "mke2fs -t ext4 /dev/vdb",
    "/sbin/mkfs.vfat /dev/sdb1",
    "mkswap /dev/sdb2",
    "wipefs -a /dev/sda",
    "wipefs --all /dev/xvda",
    "blkdiscard /dev/nvme0n1",
    "shred -n 3 /dev/sda",
    "shred /dev/mapper/vg-root",
    "dd if=/dev/zero of=/dev/sda",
    "dd if=/dev/urandom of=/dev/nvme0n1 bs=1M",
    "dd if=image.iso of=/dev/mmcblk0",
    "dd if=/dev/zero of=/dev/disk/by-id/ata-foo",
    "dd if=/dev/zero of=/dev/dm-0",
    "sudo dd if=/dev/zero of=/dev/hda",
    "echo x > /dev/sda",
    "cat /dev/zero > /dev/nvme0n1",
    "echo x >> /dev/vda",
    "cat /dev/urandom &> /dev/xvdb",
    "> /dev/sda",
    "cat image | tee /dev/sdb",
    "cp disk.img /dev/sdc",
    # fork bombs
    ":(){ :|:& };:",
    ":(){ :|: & };:",
    "bomb() { bomb | bomb & }; bomb",
    "function f { f | f & }; f",
    "f(){ f|f& }; f; [[ -n x ]]",
    "bash -c ':(){ :|:& };:'",
    # permissions, find, mv
    "chmod -R 777 /",
    "chmod --recursive 000 /etc",
    "chmod -vR 755 /usr/",
    "chown -R nobody /",
    "chown -R nobody:nogroup /var",
    "chgrp -R users /home",
    "sudo chown --recursive root ~",
    "find / -delete",
    "find /etc -name '*.conf' -delete",
    "find / -type f -exec rm -f {} \\;",
    "find -L / -exec /bin/rm -rf {} +",
    "find /usr -execdir rm {} ';'",
    "mv / /tmp/root",
    "mv /etc /tmp",
    "mv -t /tmp /usr",
]

HARMLESS: list[str] = [
    "rm -rf /tmp/x",
    "rm -rf ./build",
    "rm -rf build/",
    "rm -f /etc/foo.conf",
    "rm /etc/foo.conf",
    "rm -rf /var/lib/foo",
    "rm -rf /opt/myapp/cache",
    "rm -rf /tmp*",
    "rm -rf ~/.cache/pip",
    "rm -rf $HOME/.cache",
    "rm -rf /home/alice/tmp",
    "rm -rf -- ./-weird",
    "grep curl",
    'grep -r "rm -rf /" .',
    "grep -rn mkfs /etc",
    "fdisk -l",
    'echo "rm -rf /"',
    "echo 'mkfs'",
    "echo mkfs /dev/sda",
    "printf ':(){ :|:& };:'",
    "echo ':(){ :|:& };:' > /tmp/bomb.txt",
    "echo '$(rm -rf /)'",
    "echo 'rm -rf /' > /tmp/notes.txt",
    "dd if=/dev/zero of=/tmp/file bs=1M count=1",
    "dd if=/dev/sda of=/tmp/mbr.bin bs=512 count=1",
    "dd if=/dev/zero of=/dev/null count=1",
    "ls -la /",
    "ls -R /etc",
    "chmod -R 755 /opt/myapp",
    "chmod -r /tmp/secret",
    "chmod 755 /usr/local/bin/tool",
    "chown -R app:app /srv/app",
    "chown root /etc/hosts",
    "find /var/log -name '*.gz' -delete",
    "find / -name '*.log'",
    "find / -type f -exec grep -l secret {} +",
    "find /tmp -exec rm -rf {} +",
    "cat /dev/sda | head -c 512 | xxd",
    "lsblk",
    "df -h",
    "du -sh /var",
    "mount | grep /dev/sda",
    "blkid /dev/sda1",
    "wipefs /dev/sda",
    "wipefs -n -a /dev/sda",
    "mkswap /swapfile",
    "shred -u /tmp/secret.key",
    "echo hello > /tmp/out.txt",
    "echo hello 2>/dev/null",
    "cmd > /dev/null 2>&1",
    "echo hi | tee /tmp/log",
    "cp /etc/hosts /tmp/hosts",
    "mv /etc/foo.conf /etc/foo.conf.bak",
    "mv /tmp/a /tmp/b",
    "sudo systemctl restart kubelet",
    "sudo -u postgres psql -c 'select 1'",
    "bash -c 'echo hello'",
    "sh -c 'rm -rf /tmp/build'",
    "bash /opt/scripts/cleanup.sh",
    "echo 'ls -la' | sh",
    "eval echo rm -rf /",
    "find /tmp -name '*.tmp' | xargs rm -f",
    "find /tmp -print0 | xargs -0 rm -rf",
    "timeout 5 curl -s http://localhost:10248/healthz",
    "nohup sleep 100 &",
    "env FOO=1 printenv FOO",
    'walk() { for d in "$@"; do walk "$d"/*; done; }',
    "fib() { a=$(fib 1); b=$(fib 2); }",
    "kubectl get nodes -o wide",
    "journalctl -u kubelet --since '1 hour ago' | grep -i error",
    "ps aux | grep -v grep | grep kubelet",
    "command -v rm",
    'for f in /var/log/*.log; do gzip "$f"; done',
    "case $1 in start) echo starting;; esac",
    "[[ -f /etc/os-release ]] && cat /etc/os-release",
    "echo $((1 + 2))",
    "mkdir -p /opt/app && cd /opt/app",
    "tar czf /tmp/etc.tgz /etc",
    "rsync -a /etc/ /backup/etc/",
    "",
    "   ",
    "# rm -rf /",
    "ls # rm -rf /",
]


def rules_hit(command: str, **kwargs: object) -> set[str]:
    return {v.rule for v in check_command(command, **kwargs)}  # type: ignore[arg-type]


@pytest.mark.parametrize("command", DANGEROUS)
def test_dangerous_command_is_blocked(command: str) -> None:
    assert check_command(command), f"not blocked: {command!r}"


@pytest.mark.parametrize("command", HARMLESS)
def test_harmless_command_is_allowed(command: str) -> None:
    assert check_command(command) == []


def test_the_corpora_are_large_enough_to_mean_something() -> None:
    assert len(DANGEROUS) >= 60
    assert len(HARMLESS) >= 60
    assert not set(DANGEROUS) & set(HARMLESS)


@pytest.mark.parametrize(
    ("command", "rule"),
    [
        ("rm -rf /", "recursive-delete-root"),
        ("rm -rf ~", "recursive-delete-home"),
        ("mkfs.ext4 /dev/sda1", "make-filesystem"),
        ("wipefs -a /dev/sda", "wipe-device"),
        ("shred /dev/sda", "shred-device"),
        ("dd if=/dev/zero of=/dev/sda", "dd-to-block-device"),
        ("echo x > /dev/sda", "redirect-to-block-device"),
        ("tee /dev/sda", "write-to-block-device"),
        (":(){ :|:& };:", "fork-bomb"),
        ("chmod -R 777 /", "recursive-chmod-root"),
        ("chown -R x /", "recursive-chown-root"),
        ("find / -delete", "find-delete-root"),
        ("mv /etc /tmp", "move-system-dir"),
    ],
)
def test_each_builtin_rule_is_reported_by_its_name(command: str, rule: str) -> None:
    assert rule in BUILTIN_RULES
    assert rule in rules_hit(command)


def test_violation_names_the_offending_simple_command_not_the_whole_line() -> None:
    [violation] = check_command("cd /tmp && sudo rm -rf '/' ; echo done")
    assert violation == Violation(rule="recursive-delete-root", matched="rm -rf /")
    assert str(violation) == "rm -rf /"
    assert violation.message == "dangerous command blocked: rm -rf /"


def test_every_dangerous_simple_command_in_a_line_is_reported() -> None:
    violations = check_command("rm -rf / ; mkfs.ext4 /dev/sdb ; ls")
    assert [v.rule for v in violations] == ["recursive-delete-root", "make-filesystem"]


def test_a_fork_bomb_is_reported_with_its_definition() -> None:
    [violation] = check_command(":(){ :|:& };:")
    assert violation.rule == "fork-bomb"
    assert ":|:" in violation.matched


def test_absurdly_deep_nesting_is_blocked_rather_than_trusted() -> None:
    command = "echo hi"
    for _ in range(12):
        command = f"sh -c {shlex.quote(command)}"
    assert rules_hit(command) == {"nesting-too-deep"}


def test_a_site_rule_blocks_what_matches_its_pattern() -> None:
    rule = DenyRule(name="site-no-iptables-flush", pattern=r"^iptables\b.*\s-F\b")
    assert rules_hit("sudo iptables -F", extra_rules=[rule]) == {"site-no-iptables-flush"}
    assert rules_hit("bash -c 'iptables -t nat -F'", extra_rules=[rule]) == {
        "site-no-iptables-flush"
    }
    assert check_command("iptables -L", extra_rules=[rule]) == []


def test_a_site_rule_sees_the_command_as_written_including_its_wrappers() -> None:
    rule = DenyRule(name="site-no-sudo", pattern=r"^sudo\b")
    [violation] = check_command("sudo ls", extra_rules=[rule])
    assert violation == Violation(rule="site-no-sudo", matched="sudo ls")


def test_a_site_rule_can_itself_be_allow_listed() -> None:
    rule = DenyRule(name="site-no-reboot", pattern=r"^reboot\b")
    assert check_command("reboot", extra_rules=[rule], allowed={"site-no-reboot"}) == []


def test_allow_listing_a_builtin_rule_lets_only_that_rule_through() -> None:
    allowed = {"make-filesystem"}
    assert check_command("mkfs.ext4 /dev/sdb1", allowed=allowed) == []
    assert rules_hit("mkfs.ext4 /dev/sdb1 && rm -rf /", allowed=allowed) == {
        "recursive-delete-root"
    }
    assert rules_hit("dd if=/dev/zero of=/dev/sdb", allowed=allowed) == {"dd-to-block-device"}


def test_allow_listing_an_unknown_rule_name_changes_nothing() -> None:
    assert rules_hit("rm -rf /", allowed={"no-such-rule"}) == {"recursive-delete-root"}


def test_a_script_with_a_dangerous_line_in_the_middle_is_blocked() -> None:
    script = """#!/bin/bash
set -euo pipefail
# rotate logs, then clean up
journalctl --vacuum-time=2d
if [[ -d /var/cache/apt ]]; then
    apt-get clean
fi
sudo rm -rf --no-preserve-root /
echo "done: rm -rf / would be bad"
"""
    [violation] = check_script(script)
    assert violation.rule == "recursive-delete-root"
    assert violation.matched == "rm -rf --no-preserve-root /"


def test_a_harmless_script_with_crlf_line_endings_is_allowed() -> None:
    script = "cd /tmp\r\nrm -rf ./build\r\necho 'rm -rf /'\r\n"
    assert check_script(script) == []


def test_a_dangerous_line_in_a_script_bashlex_cannot_parse_is_still_blocked() -> None:
    script = "case $1 in\n  stop) systemctl stop kubelet ;;\nesac\nmkfs.ext4 /dev/sdb\n"
    assert {v.rule for v in check_script(script)} == {"make-filesystem"}


# --- generated variants -------------------------------------------------------------------

_RECURSIVE = ["r", "R", "-recursive"]
_FORCE = ["f", "-force"]


@st.composite
def rm_flags(draw: st.DrawFn) -> list[str]:
    """Recursive and force flags in any spelling, clustering and order."""
    recursive = draw(st.sampled_from(_RECURSIVE))
    force = draw(st.sampled_from(_FORCE))
    extras = draw(st.lists(st.sampled_from(["v", "I", "d"]), max_size=2))
    short = [c for c in (recursive, force, *extras) if not c.startswith("-")]
    long = [f"-{c}" for c in (recursive, force) if c.startswith("-")]
    if draw(st.booleans()) and short:
        short_flags = ["-" + "".join(draw(st.permutations(short)))]
    else:
        short_flags = [f"-{c}" for c in short]
    return draw(st.permutations(short_flags + long))


_TARGETS = ["/", "/*", "/etc", "/usr/", "/var/*", "~", "$HOME", "/boot"]
_QUOTES = ["{}", "'{}'", '"{}"']
_WRAPPERS = [
    "",
    "sudo ",
    "sudo -u root -E ",
    "env FOO=bar ",
    "nohup ",
    "timeout 30 ",
    "nice -n 10 ",
    "FOO=1 ",
    "ionice -c3 ",
    "stdbuf -oL ",
    "command ",
    "time ",
]
_CONTEXTS = ["{}", "true && {}", "ls | {}", "({})", "echo $({})", "bash -c {!r}", "eval {!r}"]


@settings(max_examples=200, deadline=None)
@given(
    flags=rm_flags(),
    target=st.sampled_from(_TARGETS),
    quote=st.sampled_from(_QUOTES),
    wrappers=st.lists(st.sampled_from(_WRAPPERS), max_size=3),
    context=st.sampled_from(_CONTEXTS),
)
def test_recursive_forced_removal_of_a_system_path_is_blocked_in_every_spelling(
    flags: list[str], target: str, quote: str, wrappers: list[str], context: str
) -> None:
    if target in ("~",) and quote != "{}":
        target = "/"  # a quoted ~ is a literal file name, not the home directory
    rm = f"{''.join(wrappers)}rm {' '.join(flags)} {quote.format(target)}"
    command = context.format(rm)
    assert check_command(command), f"not blocked: {command!r}"


_SAFE_NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(
    flags=rm_flags(),
    parts=st.lists(_SAFE_NAME.filter(lambda s: s not in (".", "..")), min_size=1, max_size=4),
    quote=st.sampled_from(_QUOTES),
    wrappers=st.lists(st.sampled_from(_WRAPPERS), max_size=3),
)
def test_recursive_forced_removal_under_tmp_is_allowed(
    flags: list[str], parts: list[str], quote: str, wrappers: list[str]
) -> None:
    path = "/tmp/" + "/".join(parts)
    command = f"{''.join(wrappers)}rm {' '.join(flags)} {quote.format(path)}"
    assert check_command(command) == [], command


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=80))
def test_arbitrary_text_never_crashes_the_checker(text: str) -> None:
    assert isinstance(check_command(text), list)
