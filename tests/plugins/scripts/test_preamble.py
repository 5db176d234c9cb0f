"""The program a script run sends on stdin, run here with a local ``sh -s``: values are data,
the interpreter is chosen or reported missing, and a stopped run leaves nothing behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from knm.core.credentials import DecryptedCredential
from knm.plugins.scripts.preamble import (
    MISSING_MARK,
    SH_FALLBACK_MARK,
    command_for,
    delimiter_for,
    exports,
    program,
)


def run(
    language: str, script: str, values: dict[str, str] | None = None, path: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": path} if path else None
    return subprocess.run(
        ["/bin/sh", "-s"],
        input=program(language, script, values or {}),
        capture_output=True, text=True, timeout=30, env=env,
    )  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(value=st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"])))
def test_any_value_reaches_the_script_unchanged_and_runs_nothing(value: str) -> None:
    result = subprocess.run(
        ["/bin/sh", "-s"],
        input=program("shell", 'printf %s "$VALUE"', {"VALUE": value}).encode(),
        capture_output=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == value


def test_injection_attempts_in_values_run_nothing(tmp_path: Path) -> None:
    marker = tmp_path / f"pwned-{uuid.uuid4().hex}"
    attempts = [
        f"$(touch {marker})",
        f"`touch {marker}`",
        f"'; touch {marker}; '",
        f'"; touch {marker}; "',
        f"x\ntouch {marker}\n",
        f"KNM_EOF\ntouch {marker}",
    ]
    for value in attempts:
        result = run("shell", 'echo "[$V]"', {"V": value})
        assert result.stdout == f"[{value}]\n"
        assert not marker.exists()
    result = run("python", "import os\nprint(os.environ['V'])", {"V": attempts[0]})
    assert result.stdout == attempts[0] + "\n" and not marker.exists()


def test_a_script_line_equal_to_a_delimiter_never_ends_the_here_document() -> None:
    script = "".join(f"KNM_EOF_{i:016x}\n" for i in range(3))
    assert delimiter_for(script) not in script.splitlines()


def test_names_are_checked_once_more_where_exports_are_written() -> None:
    with pytest.raises(ValueError):
        exports({"A;touch x": "1"})


def test_a_shell_script_reading_stdin_does_not_swallow_its_own_rest() -> None:
    result = run("shell", "cat\nread line\necho after-read\n")
    assert (result.returncode, result.stdout) == (0, "after-read\n")


def test_exit_codes_and_signals_come_through() -> None:
    assert run("shell", "exit 7").returncode == 7
    assert run("python", "import sys\nsys.exit(5)").returncode == 5
    assert run("shell", "kill -TERM $$").returncode == -15


def _bin_without(tmp_path: Path, *missing: str) -> str:
    """A PATH directory with the usual tools, except ``missing``."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in ("sh", "bash", "setsid", "python3", "cat", "sleep"):
        found = shutil.which(tool, path="/usr/bin:/bin")
        if tool not in missing and found:
            (folder / tool).symlink_to(found)
    return str(folder)


def test_without_bash_a_shell_script_runs_with_sh_and_says_so(tmp_path: Path) -> None:
    result = run("shell", "echo ran", path=_bin_without(tmp_path, "bash"))
    assert (result.returncode, result.stdout) == (0, "ran\n")
    assert SH_FALLBACK_MARK in result.stderr


def test_without_python3_a_python_script_exits_127_saying_so(tmp_path: Path) -> None:
    result = run("python", "print(1)", path=_bin_without(tmp_path, "python3"))
    assert result.returncode == 127
    assert MISSING_MARK in result.stderr and "python3" in result.stderr


def test_without_setsid_the_run_still_works(tmp_path: Path) -> None:
    result = run("shell", "echo fine", path=_bin_without(tmp_path, "setsid"))
    assert (result.returncode, result.stdout) == (0, "fine\n")


def test_sigterm_to_the_wrapper_stops_everything_the_script_started() -> None:
    tag = uuid.uuid4().hex[:8]
    script = f"sleep 3600 & exec -a knm-{tag} sleep 3601\n"
    proc = subprocess.Popen(["/bin/sh", "-s"], stdin=subprocess.PIPE, text=True)
    assert proc.stdin is not None
    proc.stdin.write(program("shell", script, {}))
    proc.stdin.close()

    def sleepers() -> list[str]:
        out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
        return [line for line in out.splitlines() if f"knm-{tag}" in line or "sleep 3600" in line]

    deadline = time.monotonic() + 10
    while not any(f"knm-{tag}" in line for line in sleepers()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.terminate()
    assert proc.wait(10) == -15
    deadline = time.monotonic() + 10
    while any(f"knm-{tag}" in line for line in sleepers()):
        assert time.monotonic() < deadline, sleepers()
        time.sleep(0.05)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("sudo") is None, reason="needs root and sudo")
def test_with_sudo_a_password_sudo_does_not_read_is_skipped_not_run(tmp_path: Path) -> None:
    # Root is never asked for a password, like a NOPASSWD rule: the password line stays on
    # stdin, and the shell must skip it rather than run it.
    marker = tmp_path / "ran-the-password"
    credential = DecryptedCredential(
        id=1, name="c", username="root", auth_type="password", port=22,
        password=f"touch {marker}", private_key=None,
    )  # fmt: skip
    command, head = command_for(True, credential)
    assert credential.password not in command
    result = subprocess.run(
        ["/bin/sh", "-c", command], input=head + program("shell", "id -u", {}),
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (0, "0\n"), result.stderr
    assert not marker.exists()
