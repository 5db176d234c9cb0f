"""The wire module and the SDK import no server code: a client stays light."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: Modules a client must never pull in.
SERVER = ("litestar", "asyncpg", "pluggy", "uvicorn", "knm.core", "knm.plugins")


def imported_after(statement: str) -> list[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(done.stdout.splitlines()[-1])


def server_modules(modules: list[str]) -> list[str]:
    return [m for m in modules if m.split(".")[0] in SERVER or m.startswith(SERVER)]


@pytest.mark.parametrize("statement", ["import knm.wire", "import knm.client", "import knm"])
def test_importing_imports_no_server_module(statement: str) -> None:
    assert server_modules(imported_after(statement)) == []


def test_importing_the_client_defers_its_http_stack_to_first_use() -> None:
    modules = imported_after("import knm.client")
    assert "httpx" not in modules and "websockets" not in modules
    used = imported_after("from knm.client import Client")
    assert "knm.client.http" in used and server_modules(used) == []
    assert "httpx" not in used  # the async client's; the sync one speaks http.client
