"""Shell completion: the candidates (static words from the real parser, live names from a real
server), the hidden ``knm __complete`` the scripts call, and the bash script driven in a real
bash; fish's script is driven through fish's own ``complete -C`` and zsh's is checked by zsh
(scripts/test.sh installs both; without them those tests skip or check less)."""

from __future__ import annotations

import argparse
import json
import os
import pty
import select
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from knm.cli.completion import names
from knm.cli.completion.scripts import SCRIPTS
from knm.cli.completion.words import candidates
from knm.cli.main import build_parser, main
from knm.client import Client
from knm.testing.process import KnmProcess
from knm.wire import TASK_STATES

from .conftest import Knm

WORKTREE = Path(__file__).resolve().parents[2]
PLAYBOOK = "- hosts: all\n  tasks:\n    - ansible.builtin.ping:\n"
#: Nothing listens there: a server that is down.
NOWHERE = "http://127.0.0.1:9"


def complete(*words: str) -> list[str]:
    """The candidates for the last of ``knm words...``, as the parser alone gives them."""
    line = ["knm", *words]
    return candidates(build_parser(), line, len(line) - 1)


def asked(knm: Knm, *words: str) -> list[str]:
    """What ``knm __complete`` prints for the last of ``knm words...`` (the admin's server)."""
    result = knm("__complete", str(len(words)), "knm", *words)
    assert result.code == 0 and result.err == ""
    return result.out.splitlines()


def commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The sub-commands of ``parser``, by name."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """``parser`` and every parser under it."""
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += parsers(sub)
    return found


def marked(parser: argparse.ArgumentParser) -> dict[tuple[str, str], str]:
    """``(command, argument) → kind`` of every argument marked with live names; an option is
    named by its long form, a positional by its dest."""
    found = {}
    for p in parsers(parser):
        for action in p._actions:
            kind = names.kind_of(action)
            if kind is not None:
                label = action.option_strings[-1] if action.option_strings else action.dest
                found[(p.prog.removeprefix("knm "), label)] = kind
    return found


# --- static words: the parser alone -------------------------------------------------------


def test_a_command_completes_from_its_first_letters() -> None:
    assert complete("ta") == ["task"]
    assert complete("c") == ["cluster", "credential", "config", "completion"]


def test_an_empty_word_after_knm_offers_every_command() -> None:
    assert complete("") == list(commands(build_parser()))


def test_a_noun_offers_its_sub_commands() -> None:
    task = commands(build_parser())["task"]
    assert complete("task", "") == list(commands(task))
    assert complete("task", "w") == ["watch"]


def test_options_are_those_of_the_current_sub_command() -> None:
    offered = complete("task", "list", "--")
    assert {"--status", "--page-size", "--json", "--url", "--help"} <= set(offered)
    assert "--with-output" not in offered  # task show's
    assert complete("task", "list", "--pa") == ["--page", "--page-size"]


def test_a_lone_dash_offers_short_options_too() -> None:
    assert {"-c", "--cluster", "-n", "--nodes"} <= set(complete("ssh", "run", "-"))
    assert "-c" not in complete("ssh", "run", "--")


def test_a_sub_command_without_positionals_left_offers_its_options() -> None:
    assert "--status" in complete("task", "list", "")


def test_an_option_given_is_not_offered_again_unless_it_repeats() -> None:
    assert "--json" not in complete("task", "list", "--json", "--")
    assert "--nodes" in complete("ssh", "run", "-n", "n1", "--")


def test_an_options_value_is_not_taken_for_a_command() -> None:
    # "--kind list" is a value: the next word is still an option or a value of task list.
    assert "--status" in complete("task", "list", "--kind", "list", "--")


def test_choices_complete_as_the_options_value() -> None:
    assert complete("task", "list", "--status", "") == list(TASK_STATES)
    assert complete("task", "output", "x", "--stream", "std") == ["stdout", "stderr"]
    assert complete("completion", "") == ["bash", "fish", "zsh"]


def test_choices_complete_inside_an_option_written_with_equals() -> None:
    assert complete("task", "list", "--status=ru") == ["--status=running"]


def test_bash_split_at_equals_is_read_back_and_answered_bare() -> None:
    # Bash hands "--status=ru" over as "--status", "=", "ru" and replaces only "ru".
    assert complete("task", "list", "--status", "=", "ru") == ["running"]
    assert complete("task", "list", "--status", "=") == list(TASK_STATES)


def test_after_a_double_dash_no_option_is_offered() -> None:
    assert complete("ssh", "run", "-c", "lab", "-n", "n1", "--", "-") == []


def test_an_unknown_word_completes_nothing() -> None:
    assert complete("nosuch", "") == []
    assert complete("task", "nosuch", "--") == []


def test_a_new_command_completes_without_an_edit() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    widget = sub.add_parser("widget").add_subparsers(dest="widget_command")
    spin = widget.add_parser("spin")
    spin.add_argument("--speed", choices=["slow", "fast"])
    assert candidates(parser, ["knm", "wid"], 1) == ["widget"]  # "wi": window too
    assert candidates(parser, ["knm", "widget", ""], 2) == ["spin"]
    assert candidates(parser, ["knm", "widget", "spin", "--speed", "f"], 4) == ["fast"]


def test_the_hidden_command_prints_one_candidate_a_line_and_stays_out_of_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["__complete", "2", "knm", "task", "w"]) == 0
    assert capsys.readouterr().out == "watch\n"
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "__complete" not in capsys.readouterr().out


def test_the_hidden_command_answers_nothing_to_nonsense(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["__complete", "not-a-number", "knm"]) == 0
    assert main(["__complete"]) == 0
    assert capsys.readouterr() == ("", "")


# --- which arguments take live names ------------------------------------------------------


def test_arguments_naming_server_things_are_marked_where_they_are_defined() -> None:
    found = marked(build_parser())
    assert found[("cluster show", "name")] == "cluster"
    assert found[("cluster delete", "name")] == "cluster"
    assert found[("ssh run", "--cluster")] == "cluster"
    assert found[("task list", "--cluster")] == "cluster"
    assert found[("ssh run", "--credential")] == "credential"
    assert found[("ansible run", "playbook")] == "playbook"
    assert found[("script run", "script")] == "script"
    assert found[("workflow run", "workflow")] == "workflow"
    assert found[("playbook show", "item")] == "playbook"
    assert found[("workflow edit", "item")] == "workflow"
    assert found[("task watch", "task_id")] == "task"
    assert found[("workflow approve", "task_id")] == "task"
    assert found[("window show", "window")] == "window"
    assert found[("window create", "--cluster")] == "cluster"
    assert found[("window cancel-resume", "task")] == "task"
    assert set(found.values()) == set(names.FETCH)


def test_arguments_naming_nothing_on_the_server_are_not_marked() -> None:
    found = marked(build_parser())
    assert ("ssh run", "--selector") not in found
    assert ("task start", "route") not in found
    assert ("cluster create", "--file") not in found


def test_a_mark_of_an_unknown_kind_fails_when_the_parser_is_built() -> None:
    action = argparse.ArgumentParser().add_argument("name")
    with pytest.raises(ValueError, match="clustr"):
        names.live(action, "clustr")


# --- start-up ----------------------------------------------------------------------------

#: Completes ``knm task <TAB>`` as the shell would, then prints the modules it imported.
IMPORTS = """
import json, sys
from knm.cli.main import main
main(["__complete", "2", "knm", "task", ""])
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""
SERVER = ("litestar", "asyncpg", "pluggy", "uvicorn", "knm.core", "knm.plugins")


def test_static_words_import_neither_the_http_client_nor_the_server() -> None:
    done = subprocess.run(
        [sys.executable, "-c", IMPORTS], capture_output=True, text=True, timeout=60,
        env={**os.environ, "KNM_URL": NOWHERE, "PYTHONPATH": str(WORKTREE)},
    )  # fmt: skip
    assert done.returncode == 0 and "watch" in done.stdout.split()
    modules = json.loads(done.stderr.strip().splitlines()[-1])
    assert "knm.client.http" not in modules and "knm.client.sync" not in modules
    assert [m for m in modules if m.startswith(SERVER) or m.split(".")[0] in SERVER] == []


# --- live names from a real server -------------------------------------------------------


@pytest.fixture(scope="module")
def library(admin: Client) -> None:
    """Things to complete, named so no other test's items match their prefix."""
    nodes = [{"name": "n1", "address": "127.0.0.2"}]
    admin.create_cluster("comp-lab", "static", nodes=nodes)
    admin.create_cluster("comp-spare", "static", nodes=nodes)
    admin.playbooks.create("comp-ping", PLAYBOOK)
    admin.scripts.create("comp-hello", "echo hello", language="shell")
    admin.workflows.create("comp-flow", {"steps": [{"id": "one", "type": "test"}]})
    admin.create_credential("comp-root", "root", "password", password="not-used")
    admin.create_window("comp-nightly", "0 22 * * *", 3600)


def test_cluster_names_complete_live(knm: Knm, library: None) -> None:
    assert asked(knm, "cluster", "show", "comp-") == ["comp-lab", "comp-spare"]
    assert asked(knm, "cluster", "nodes", "comp-s") == ["comp-spare"]
    assert asked(knm, "ssh", "run", "--cluster", "comp-l") == ["comp-lab"]
    assert asked(knm, "ssh", "run", "-c", "comp-l") == ["comp-lab"]
    assert asked(knm, "task", "list", "--cluster=comp-l") == ["--cluster=comp-lab"]


def test_library_and_credential_names_complete_live(knm: Knm, library: None) -> None:
    assert asked(knm, "ansible", "run", "comp-") == ["comp-ping"]
    assert asked(knm, "playbook", "show", "comp-") == ["comp-ping"]
    assert asked(knm, "script", "run", "comp-") == ["comp-hello"]
    assert asked(knm, "script", "versions", "comp-h") == ["comp-hello"]
    assert asked(knm, "workflow", "run", "comp-") == ["comp-flow"]
    assert asked(knm, "credential", "show", "comp-") == ["comp-root"]
    assert asked(knm, "script", "run", "x", "--credential", "comp-") == ["comp-root"]
    assert asked(knm, "window", "show", "comp-") == ["comp-nightly"]
    assert asked(knm, "window", "create", "w", "--cluster", "comp-l") == ["comp-lab"]


def test_task_ids_complete_live(knm: Knm, library: None) -> None:
    started = knm("task", "start", "test", "-c", "comp-lab", "-n", "n1", "--detach")
    assert started.code == 5, started.err  # detached, still running
    task_id = started.out.strip()
    assert task_id in asked(knm, "task", "watch", "")
    assert asked(knm, "task", "show", task_id[:-3]) == [task_id]
    assert task_id in asked(knm, "workflow", "approve", "test-exec-")


def test_a_url_on_the_line_is_the_server_asked(
    knm: Knm, library: None, server: KnmProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KNM_URL", NOWHERE)
    assert asked(knm, "cluster", "show", "--url", server.base_url, "comp-l") == ["comp-lab"]
    assert asked(knm, "cluster", "show", "--url=" + server.base_url, "comp-l") == ["comp-lab"]
    assert asked(knm, "cluster", "show", "comp-l") == []


def test_live_names_are_silent_when_the_server_is_down(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KNM_URL", NOWHERE)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    began = time.monotonic()
    assert main(["__complete", "3", "knm", "cluster", "show", ""]) == 0
    assert time.monotonic() - began < 2
    assert capsys.readouterr() == ("", "")


def test_live_names_give_up_on_a_server_that_never_answers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as mute:  # connects, never answers
        monkeypatch.setenv("KNM_URL", f"http://127.0.0.1:{mute.getsockname()[1]}")
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
        began = time.monotonic()
        assert main(["__complete", "3", "knm", "task", "watch", ""]) == 0
        assert time.monotonic() - began < names.DEADLINE + 0.5
    assert capsys.readouterr() == ("", "")


def test_live_names_give_up_at_the_deadline_whatever_is_slow(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A slow name lookup or a token refresh first: no single timeout sees the whole wait.
    monkeypatch.setenv("KNM_URL", NOWHERE)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setitem(names.FETCH, "cluster", lambda client, prefix: time.sleep(5) or ["x"])
    began = time.monotonic()
    assert names.fetch("cluster", "") == []
    assert time.monotonic() - began < names.DEADLINE + 0.5


def test_live_names_are_silent_when_not_logged_in(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KNM_URL", raising=False)
    monkeypatch.delenv("KNM_TOKEN", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert main(["__complete", "3", "knm", "task", "watch", ""]) == 0
    assert capsys.readouterr() == ("", "")


def test_live_names_are_silent_with_a_token_the_server_refuses(knm: Knm, library: None) -> None:
    result = knm("__complete", "3", "knm", "cluster", "show", "", token="not-a-token")
    assert (result.code, result.out, result.err) == (0, "", "")


# --- the scripts in their shells ---------------------------------------------------------


@pytest.fixture
def shell_env(tmp_path: Path) -> dict[str, str]:
    """An environment whose ``knm`` on PATH is this worktree's, in this Python."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    program = bin_dir / "knm"
    program.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m knm.cli.main "$@"\n')
    program.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNM_")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(WORKTREE)
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    return env


#: Sources the script, then completes each line given as "CWORD WORD...", printing the
#: candidates of each on one line, between brackets.
BASH = """
source <(knm completion bash)
complete -p knm
while read -r cword rest <&3; do
    [ -n "$cword" ] || continue
    eval "COMP_WORDS=($rest)"
    COMP_CWORD=$cword
    COMP_LINE="${COMP_WORDS[*]}"
    COMP_POINT=${#COMP_LINE}
    _knm_complete knm "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    echo "[${COMPREPLY[*]}]"
done 3<<'LINES'
%s
LINES
"""


def bash(env: dict[str, str], *lines: str) -> list[str]:
    """The output of a real bash completing ``lines`` (see ``BASH``)."""
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", BASH % "\n".join(lines)],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return done.stdout.splitlines()


def test_bash_registers_the_completion_function_for_knm(shell_env: dict[str, str]) -> None:
    assert bash(shell_env) == ["complete -o default -F _knm_complete knm"]


def test_bash_completes_commands_sub_commands_options_and_choices(
    shell_env: dict[str, str],
) -> None:
    out = bash(
        shell_env,
        "1 knm ta",
        "2 knm task ''",
        "3 knm task list --page",
        "4 knm task list --status r",
        "5 knm task list --status = c",
        "2 knm completion f",
    )
    assert out[1:] == [
        "[task]",
        "[list show watch cancel rerun output start]",
        "[--page --page-size]",
        "[running]",
        "[completed cancelled]",
        "[fish]",
    ]


def test_bash_completes_live_names_from_the_server(
    shell_env: dict[str, str], server: KnmProcess, admin: Client, library: None
) -> None:
    env = {**shell_env, "KNM_URL": server.base_url, "KNM_TOKEN": admin.token or ""}
    out = bash(env, "3 knm cluster show comp-", "5 knm ssh run --cluster = comp-l")
    assert out[1:] == ["[comp-lab comp-spare]", "[comp-lab]"]


def test_bash_completion_is_silent_when_the_server_is_down(shell_env: dict[str, str]) -> None:
    out = bash({**shell_env, "KNM_URL": NOWHERE}, "3 knm task watch ''")
    assert out[1:] == ["[]"]


class Terminal:
    """An interactive bash on a pseudo-terminal: keys in, what the screen shows out."""

    def __init__(self, env: dict[str, str]) -> None:
        self.fd, tty = pty.openpty()
        env = {**env, "TERM": "dumb", "PS1": "$ ", "INPUTRC": "/dev/null"}
        self.bash = subprocess.Popen(
            ["bash", "--norc", "--noprofile", "-i"], stdin=tty, stdout=tty, stderr=tty,
            env=env, start_new_session=True,
        )  # fmt: skip
        os.close(tty)
        self.screen = ""

    def type(self, keys: str, until: str, timeout: float = 30) -> str:
        """Type ``keys``, then read until ``until`` shows (what showed since the keys)."""
        start = len(self.screen)
        os.write(self.fd, keys.encode())
        end = time.monotonic() + timeout
        while until not in self.screen[start:] and time.monotonic() < end:
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                self.screen += os.read(self.fd, 4096).decode(errors="replace")
        return self.screen[start:]

    def close(self) -> None:
        self.bash.kill()
        self.bash.wait()
        os.close(self.fd)


@pytest.fixture
def terminal(shell_env: dict[str, str]) -> Iterator[Terminal]:
    term = Terminal(shell_env)
    term.type("", "$ ")  # the first prompt: keys typed before it would race with bash's start
    yield term
    term.close()


def test_tab_in_an_interactive_bash_finishes_the_word(
    terminal: Terminal, server: KnmProcess, admin: Client, library: None
) -> None:
    terminal.type(f"export KNM_URL={server.base_url} KNM_TOKEN={admin.token}\n", "\n$ ")
    terminal.type("source <(knm completion bash)\n", "\n$ ")
    assert "knm task " in terminal.type("knm ta\t", "task ")
    # Readline breaks the word at "=" as bash's COMP_WORDS does: the value alone is replaced.
    assert "--status=running " in terminal.type("list --status=ru\t", "running ")
    terminal.type("\x15", "")  # Ctrl-U: the line is dropped, not run
    assert "comp-lab " in terminal.type("knm cluster show comp-l\t", "comp-lab ")


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_scripts_ask_knm_and_parse_in_their_shell(
    shell: str, shell_env: dict[str, str], tmp_path: Path
) -> None:
    done = subprocess.run(
        ["knm", "completion", shell], capture_output=True, text=True, timeout=60, env=shell_env
    )
    assert done.returncode == 0 and done.stderr == ""
    script = done.stdout
    assert "knm __complete" in script
    if shell == "zsh":
        assert script.startswith("#compdef knm\n") and "compdef _knm knm" in script
    else:
        assert "complete -c knm -f -a '(__knm_complete)'" in script
    path = tmp_path / f"knm.{shell}"
    path.write_text(script)
    if shutil.which(shell):
        checked = subprocess.run([shell, "-n", str(path)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr


def test_completion_help_and_the_docs_give_the_install_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["completion", "--help"])
    shown = capsys.readouterr().out
    docs = (WORKTREE / "docs" / "cli.md").read_text()
    for line in (
        "source <(knm completion bash)",
        "source <(knm completion zsh)",
        "knm completion zsh > ~/.zfunc/_knm",
        "knm completion fish > ~/.config/fish/completions/knm.fish",
    ):
        assert line in shown and line in docs
    assert set(SCRIPTS) == {"bash", "zsh", "fish"}


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_fish_completes_commands_and_choices_through_its_own_complete(
    shell_env: dict[str, str], tmp_path: Path
) -> None:
    script = tmp_path / "knm.fish"
    script.write_text(
        subprocess.run(
            ["knm", "completion", "fish"], capture_output=True, text=True, env=shell_env,
            timeout=60, check=True,
        ).stdout
    )  # fmt: skip

    def fish(line: str) -> list[str]:
        done = subprocess.run(
            ["fish", "--no-config", "-c", f"source {script}; complete -C {shlex.quote(line)}"],
            capture_output=True, text=True, env=shell_env, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return [candidate.split("\t")[0] for candidate in done.stdout.splitlines()]

    assert fish("knm ta") == ["task"]
    assert "list" in fish("knm task ")
    assert fish("knm task list --status r") == ["running"]
