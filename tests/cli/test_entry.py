"""Ctrl-C at any moment of the ``knm`` program: never a traceback, exit 130 (or the command's own
exit when it ended first).

The program is run as installed: the console script pip writes for client/pyproject.toml's
``knm`` entry point. The interpreter runs without ``site`` (``-S``, the dependencies' dirs on
``PYTHONPATH`` instead): ``.pth`` files of this machine's environment (an editable install's
finder, a certificate bundle's loader) run before the script and are the interpreter's start,
not knm's. Python ends a process itself on SIGINT until it installs its handler, which a shell
reports as 130 too; interrupted while it initializes itself (its standard streams, the
script's path), Python prints its own traceback before any script runs. The script's own first
lines (``import re``, importing ``knm.cli.entry``) come before knm can install anything: an
interrupt there may show their frames, and nothing else (``allowed_traceback``); what that
import loads is pinned by ``test_the_entry_module_imports_nothing_but_the_signal_module``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import site
import subprocess
import sys
import sysconfig
import time
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: What the first lines of the console script may load before knm's guard is in place.
ENTRY_FILES = {ROOT / "knm" / "__init__.py", ROOT / "knm" / "cli" / "__init__.py"}
ENTRY_FILES.add(ROOT / "knm" / "cli" / "entry.py")
#: The moments after the start at which Ctrl-C is sent, in seconds: the interpreter's start,
#: the imports, parsing, the connection attempt and the exit all fall in these 200 ms.
MOMENTS = [step * 0.005 for step in range(41)]


def console_script(tmp_path: Path) -> Path:
    """The ``knm`` script as pip writes it for the client's entry point (distlib's template)."""
    scripts = tomllib.loads((ROOT / "client" / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, function = scripts["knm"].partition(":")
    script = tmp_path / "knm"
    script.write_text(
        "# -*- coding: utf-8 -*-\n"
        "import re\n"
        "import sys\n"
        f"from {module} import {function}\n"
        "if __name__ == '__main__':\n"
        "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n"
        f"    sys.exit({function}())\n"
    )
    return script


def environment(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("KNM_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    dirs = [str(ROOT), *site.getsitepackages(), site.getusersitepackages()]
    return env | {
        "PYTHONPATH": os.pathsep.join(dirs),
        # Bytecode cached, as an installed knm has it.
        "PYTHONPYCACHEPREFIX": str(tmp_path / "pycache"),
        # Nothing listens there: ``knm task list`` fails to connect and exits 4.
        "KNM_URL": "http://127.0.0.1:9",
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }


def run_without_site(tmp_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    """``code`` in ``python -S``, with the console script's environment."""
    return subprocess.run(
        [sys.executable, "-S", "-c", code],
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )


def allowed_traceback(stderr: str, script: Path) -> bool:
    """A traceback of the interpreter's start or of the script's lines before its call of
    ``main``: every frame is Python's own (frozen or the standard library's), the entry
    module's package files, or the script's up to that call."""
    frames = re.findall(r'File "([^"]+)", line (\d+)', stderr)
    # The line that calls ``main``: a Ctrl-C on the lines before it (``sys.argv[0] = re.sub(``
    # compiling its pattern) interrupts Python and pip's script, not knm.
    lines = script.read_text().splitlines()
    call_line = next(n for n, text in enumerate(lines, 1) if text.lstrip().startswith("sys.exit("))
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path, line in frames:
        if path == str(script):
            if int(line) >= call_line:
                return False
        elif not (
            path.startswith("<")  # frozen modules, code the standard library compiles
            or Path(path) in ENTRY_FILES
            or (Path(path).is_relative_to(stdlib) and "site-packages" not in path)
        ):
            return False
    return bool(frames)


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("command", "finished"), [(["task", "list"], 4), (["--help"], 0)], ids=["task-list", "help"]
)
def test_ctrl_c_at_any_moment_ends_knm_with_130_and_no_traceback(
    tmp_path: Path, command: list[str], finished: int
) -> None:
    script = console_script(tmp_path)
    env = environment(tmp_path)
    args = [sys.executable, "-S", str(script), *command]
    # Once uninterrupted: the command's own exit, and the bytecode written.
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == finished, done.stderr
    outcomes: dict[int, int] = {}
    for moment in MOMENTS:
        child = subprocess.Popen(
            args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        time.sleep(moment)
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=60)
        if "Traceback" in stderr:
            assert allowed_traceback(stderr, script), f"Ctrl-C after {moment:.3f} s:\n{stderr}"
            # Python's own ends: killed by the signal it re-raises, a failed initialization
            # (1), or, when the interrupt hit a callback that ignores it, the command's own.
            assert child.returncode in (-signal.SIGINT, 1, finished), stderr
        else:
            assert child.returncode in (130, -signal.SIGINT, finished), stderr
            assert "KeyboardInterrupt" not in stderr
        outcomes[child.returncode] = outcomes.get(child.returncode, 0) + 1
    # The guard's own exit was seen (the moments are not all before Python or after the end).
    assert outcomes.get(130, 0) > 0, outcomes


def test_the_entry_module_imports_nothing_but_the_signal_module(tmp_path: Path) -> None:
    # Without site (which imports much of the standard library on its own), as the script's
    # ``import re`` leaves it: what importing the entry module adds.
    code = (
        "import json, re, sys\n"
        "before = set(sys.modules)\n"
        "from knm.cli.entry import main\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    done = run_without_site(tmp_path, code)
    assert done.returncode == 0, done.stderr
    added = set(json.loads(done.stdout))
    assert added <= {"knm", "knm.cli", "knm.cli.entry", "__future__", "signal", "_signal"}, added


#: A module whose class body takes a Ctrl-C in a descriptor's ``__set_name__``, where Python
#: (3.11) turns whatever is raised into a ``RuntimeError`` caused by it: importing
#: ``ipaddress`` while the key is pressed does that (the stop-35 CI run's flake).
INTERRUPTED_CLASS = """
import os, signal, time

class Named:
    def __set_name__(self, owner, name):
        os.kill(os.getpid(), signal.SIGINT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the handler runs between two bytecodes
            pass

def interrupted(*args, **kwargs):
    class Interrupted:
        field = Named()
    return 0
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("replaced", "raising"),
    [("_main", "a KeyboardInterrupt"), ("main", "the quiet exit")],
    ids=["inside-the-guard", "outside-the-guard"],
)
def test_a_ctrl_c_python_wraps_in_a_class_body_still_ends_with_130_and_no_traceback(
    tmp_path: Path, replaced: str, raising: str
) -> None:
    (tmp_path / "interrupting.py").write_text(INTERRUPTED_CLASS)
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "import interrupting\n"
        "import knm.cli.main\n"
        f"knm.cli.main.{replaced} = interrupting.interrupted\n"
        "from knm.cli.entry import main\n"
        "sys.exit(main())\n"
    )
    done = run_without_site(tmp_path, code)
    assert (done.returncode, done.stderr.strip()) == (130, ""), f"{raising}: {done.stderr}"


def test_an_error_caused_by_something_else_is_not_taken_for_an_interrupt() -> None:
    from knm.cli.entry import caused_by_interrupt

    try:
        try:
            raise ValueError("bad")
        except ValueError as cause:
            raise RuntimeError("wrapped") from cause
    except RuntimeError as error:
        assert not caused_by_interrupt(error)
    try:
        raise RuntimeError("wrapped") from KeyboardInterrupt()
    except RuntimeError as error:
        assert caused_by_interrupt(error)
