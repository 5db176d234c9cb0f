"""Building sudo command lines: the password goes to stdin, never into the command."""

from __future__ import annotations

import shlex

from knm.core.credentials import DecryptedCredential
from knm.core.sudo import sudo_command

PASSWORD = "s3cret-Pass"


def credential(password: str | None = PASSWORD) -> DecryptedCredential:
    auth = "password" if password else "private_key"
    return DecryptedCredential(
        id=1, name="c", username="u", auth_type=auth, port=22, password=password,
        private_key=None if password else "KEY",
    )  # fmt: skip


def test_a_plain_program_call_is_given_to_sudo_as_is_with_the_password_on_stdin() -> None:
    command, stdin = sudo_command("id -u", credential())
    assert command == "sudo -S -p '' -- id -u"
    assert stdin == PASSWORD + "\n"


def test_a_shell_line_runs_through_sh_whole() -> None:
    line = "cat /etc/os-release | grep ID && echo 'done'"
    command, _ = sudo_command(line, credential())
    assert command.startswith("sudo -S -p '' -- /bin/sh -c ")
    assert shlex.split(command)[-1] == line


def test_an_assignment_prefix_counts_as_shell_syntax() -> None:
    command, _ = sudo_command("LANG=C id", credential())
    assert "/bin/sh -c" in command


def test_without_a_password_sudo_never_waits_for_one() -> None:
    command, stdin = sudo_command("id -u", credential(password=None))
    assert command == "sudo -n -- id -u"
    assert stdin is None


def test_the_password_never_appears_in_the_command_line() -> None:
    for line in ("id", "echo $HOME; id", f"echo {PASSWORD}x"):
        command, _ = sudo_command(line, credential())
        assert command.count(PASSWORD) == line.count(PASSWORD)
