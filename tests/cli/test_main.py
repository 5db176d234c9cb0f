"""Start-up of the ``knm`` command: parsers only, plugins on demand, never a blocked one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

#: What ``knm --help`` and a remote command must not import while starting.
SERVER = ("litestar", "asyncpg", "pluggy", "uvicorn", "knm.core.", "knm.plugins")

#: Runs ``knm <argv>`` as the console script does, then prints the modules it imported.
WRAPPER = """
import atexit, json, sys
atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.__stderr__))
from knm.cli.main import main
sys.exit(main(sys.argv[1:]))
"""

#: A third-party plugin adding ``knm hello``; importing it leaves a mark.
PLUGIN = """
import os
from pathlib import Path
from typing import Any

from knm import hookimpl

Path(os.environ["MARK"]).write_text("imported")


def hello(args):
    print("hello from a plugin")
    return 0


@hookimpl
def knm_cli(subparsers):
    subparsers.add_parser("hello", help="say hello").set_defaults(func=hello)
"""

BUILTINS = "static,ssh,ansible,scripts,k8s,workflows"


def run_knm(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "KNM_URL": "http://127.0.0.1:9", **(env or {})},
    )
    modules = json.loads(done.stderr.strip().splitlines()[-1])
    return done.returncode, done.stdout, modules


def server_modules(modules: list[str]) -> list[str]:
    return [m for m in modules if m.startswith(SERVER) or m.split(".")[0] in SERVER]


def test_help_imports_no_server_module_and_no_plugin() -> None:
    code, out, modules = run_knm("--help")
    assert code == 0 and "task" in out
    assert server_modules(modules) == []


def test_a_remote_command_starts_without_the_server() -> None:
    # Nothing listens on port 9: the command fails to connect, having imported only the client,
    # whose sync HTTP is the standard library's (httpx and its CLI extra are the async client's).
    code, _, modules = run_knm("task", "list")
    assert code == 4
    assert "knm.client.http" in modules and "httpx" not in modules
    assert server_modules(modules) == []


@pytest.fixture
def plugin(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "hello_plugin.py").write_text(PLUGIN)
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    return {
        "PYTHONPATH": path,
        "MARK": str(tmp_path / "mark"),
        "KNM_PLUGINS": "hello_plugin",
        "KNM_LOAD_ENTRYPOINTS": "false",
    }


def test_a_plugins_command_loads_the_plugin_when_it_is_used(plugin: dict[str, str]) -> None:
    code, out, _ = run_knm("hello", env={**plugin, "KNM_BLOCKED_PLUGINS": BUILTINS})
    assert (code, out) == (0, "hello from a plugin\n")
    assert Path(plugin["MARK"]).exists()


def test_help_does_not_import_plugins(plugin: dict[str, str]) -> None:
    code, _, modules = run_knm("--help", env=plugin)
    assert code == 0 and "hello_plugin" not in modules
    assert not Path(plugin["MARK"]).exists()


def test_a_blocked_plugins_module_is_never_imported(plugin: dict[str, str]) -> None:
    blocked = {**plugin, "KNM_BLOCKED_PLUGINS": f"{BUILTINS},hello_plugin"}
    code, _, modules = run_knm("hello", env=blocked)
    assert code == 2  # argparse: no such command
    assert "hello_plugin" not in modules
    assert not Path(plugin["MARK"]).exists()


def test_ctrl_c_exits_130_without_a_traceback() -> None:
    code = (
        "import signal, sys\n"
        "from knm.cli import main as m\n"
        "def interrupted(argv):\n"
        "    raise KeyboardInterrupt\n"
        "m._main = interrupted\n"
        "sys.exit(m.main([]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 130
    assert "Traceback" not in done.stderr


def test_ctrl_c_while_the_parsers_load_exits_130_without_a_traceback() -> None:
    # The interrupt lands while ``knm task list`` imports its commands.
    code = (
        "import sys\n"
        "class Interrupt:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'knm.cli.remote':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Interrupt())\n"
        "from knm.cli.main import main\n"
        "sys.exit(main(['task', 'list']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 130
    assert "Traceback" not in done.stderr


def test_help_and_the_readme_list_every_exit_code_with_its_meaning() -> None:
    from knm.cli.main import build_parser
    from knm.cli.remote.session import EXIT_CODES

    help_text = build_parser().format_help()
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    table = readme.split("Exit codes (also in `knm --help`):", 1)[1]
    for code, meaning in EXIT_CODES.items():
        assert f"  {code}  {meaning}" in help_text
        assert f"\n| {code} | " in table
    assert "| 5 | detached" in table


def test_every_remote_command_takes_the_knm_context_but_cluster_create_a_kubeconfigs() -> None:
    import argparse

    from knm.cli.main import build_parser

    def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Any:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from commands(sub, (*path, name))
                return
        yield path, parser

    seen = 0
    for path, parser in commands(build_parser()):
        dests = {s: a.dest for a in parser._actions for s in a.option_strings}
        if "--url" not in dests:
            continue  # a local command (serve, migrate, …)
        seen += 1
        expected = "kube_context" if path == ("cluster", "create") else "context"
        assert dests.get("--context") == expected, path
    assert seen > 40


@pytest.mark.parametrize("argv", [["task", "watch", ""], ["task", "show", "task/"]])
def test_an_empty_id_is_a_usage_error_naming_the_argument(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from knm.cli.main import main

    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--url", "http://127.0.0.1:9"])
    assert exit_.value.code == 2
    assert "argument task_id: " in capsys.readouterr().err
