"""Fixtures of the remote commands' tests: a real ``knm serve`` over loopback (with the test
executor), an admin client of it, and ``knm``, which runs a command in-process through
``knm.cli.main.main`` (the same code as the ``knm`` program, without a Python start per command).

``server`` and ``admin`` are knm.testing's ``knm_server`` and ``sdk_admin``; a module may
override ``knm_server_env`` (other plugins, settings) and keep the rest.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from knm.cli.main import main
from knm.client import Client
from knm.testing.process import KnmProcess


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


#: ``knm(*args, token=None, stdin=None)``: a command's exit code and output.
Knm = Callable[..., Result]


@pytest.fixture(scope="module")
def server(knm_server: KnmProcess) -> KnmProcess:
    """knm.testing's ``knm_server`` (the test executor; override ``knm_server_env`` for more)."""
    return knm_server


@pytest.fixture(scope="module")
def admin(sdk_admin: Client) -> Client:
    return sdk_admin


@pytest.fixture
def knm(
    server: KnmProcess,
    admin: Client,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Knm:
    """Runs a command as the admin (or with ``token``); ``stdin`` is what it reads, not a
    terminal."""
    monkeypatch.setenv("KNM_URL", server.base_url)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))

    def run(*args: str, token: str | None = None, stdin: str = "") -> Result:
        monkeypatch.setenv("KNM_TOKEN", token or admin.token or "")
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
