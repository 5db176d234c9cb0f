"""knm/ is split between two distributions: kube-node-manager-client (client/pyproject.toml: the
``knm`` command, the SDK, the wire structs) and kube-node-manager (pyproject.toml: the server),
which requires it. Each package is in exactly one; the client's modules need nothing of the
server's but in the commands that say it is missing; a tree of the client's modules alone runs
the remote commands and refuses the local ones in one line."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import shutil
import site
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from setuptools import find_packages

import knm

ROOT = Path(__file__).resolve().parents[1]
#: The client's modules that import the server's, each behind ``knm.cli.local.needs_server`` or
#: ``server_installed()``: the local commands, and ``main``'s loading of plugins' commands.
NEEDS_SERVER = {"knm.cli.local", "knm.cli.rotate_key", "knm.cli.main"}


def pyproject(path: Path) -> dict:
    return tomllib.loads(path.read_text())


def client_packages() -> set[str]:
    return set(pyproject(ROOT / "client" / "pyproject.toml")["tool"]["setuptools"]["packages"])


def server_packages() -> set[str]:
    find = pyproject(ROOT / "pyproject.toml")["tool"]["setuptools"]["packages"]["find"]
    return set(find_packages(str(ROOT), include=find["include"], exclude=find.get("exclude", ())))


def package_dir(name: str) -> Path:
    return ROOT.joinpath(*name.split("."))


def client_modules() -> dict[str, Path]:
    found = {}
    for package in client_packages():
        for path in package_dir(package).glob("*.py"):
            found[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return found


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` may import when it runs (functions included, not ``TYPE_CHECKING``)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def test_every_package_of_knm_belongs_to_exactly_one_distribution() -> None:
    packages = {
        ".".join(path.parent.relative_to(ROOT).parts)
        for path in (ROOT / "knm").rglob("__init__.py")
    }
    client, server = client_packages(), server_packages()
    assert client & server == set()
    assert client | server == packages


def test_the_clients_modules_import_the_server_only_in_the_commands_that_need_it() -> None:
    modules = client_modules()
    ours = {name for name in imports_of(ROOT / "knm" / "__init__.py") if name.startswith("knm.")}
    assert ours == set(), "knm/__init__.py names the server's modules lazily, as strings"
    leaks = {
        name: sorted(target for target in imports_of(path)
                     if target.split(".")[0] == "knm" and target not in modules
                     and target.rpartition(".")[0] not in modules)  # `from knm.x import name`
        for name, path in modules.items() if name not in NEEDS_SERVER
    }  # fmt: skip
    assert {name: found for name, found in leaks.items() if found} == {}


def requirement_closure(names: list[str]) -> set[str]:
    """The distributions ``names`` require, with theirs, as installed here."""
    seen: set[str] = set()
    todo = [Requirement(name) for name in names]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in seen or (requirement.marker and not requirement.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        todo.extend(Requirement(r) for r in importlib.metadata.requires(name) or [])
    return seen


def test_the_clients_modules_import_only_its_dependencies_and_the_standard_library() -> None:
    client = pyproject(ROOT / "client" / "pyproject.toml")["project"]
    allowed = requirement_closure(client["dependencies"])
    owners = importlib.metadata.packages_distributions()
    outside: dict[str, set[str]] = {}
    for name, path in client_modules().items():
        if name in NEEDS_SERVER:
            continue
        for target in imports_of(path):
            top = target.split(".")[0]
            if top == "knm" or top in sys.stdlib_module_names:
                continue
            dists = {canonicalize_name(d) for d in owners.get(top, [top])}
            if not dists & allowed:
                outside.setdefault(name, set()).add(top)
    assert outside == {}


def test_both_distributions_and_knm_have_one_version() -> None:
    client = pyproject(ROOT / "client" / "pyproject.toml")["project"]
    server = pyproject(ROOT / "pyproject.toml")["project"]
    assert client["version"] == server["version"] == knm.__version__
    assert f"{client['name']}=={client['version']}" in server["dependencies"]
    # One `knm` command, the client's: two would be one file owned by both distributions.
    assert "knm" in client["scripts"] and "knm" not in server.get("scripts", {})


@pytest.fixture(scope="module")
def client_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The client's modules alone, as a client-only install has them."""
    tree = tmp_path_factory.mktemp("client-tree")
    for package in client_packages():
        target = tree.joinpath(*package.split("."))
        target.mkdir(parents=True, exist_ok=True)
        for path in package_dir(package).glob("*.py"):
            shutil.copy(path, target)
    return tree


def run_client(tree: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # -S: no .pth files, so no installed knm (an editable one maps knm.core back in); the
    # dependencies come from site-packages, named on PYTHONPATH after the tree.
    sites = [*site.getsitepackages(), site.getusersitepackages()]
    paths = dict.fromkeys([str(tree), *(path for path in sites if Path(path).is_dir())])
    env = {key: value for key, value in os.environ.items() if not key.startswith("KNM_")}
    env.update(PYTHONPATH=os.pathsep.join(paths), HOME=str(tree), KNM_URL="http://127.0.0.1:9")
    return subprocess.run([sys.executable, "-S", *args], capture_output=True, text=True,
                          env=env, cwd=tree, timeout=60, check=False)  # fmt: skip


def test_the_client_tree_alone_has_no_server(client_tree: Path) -> None:
    done = run_client(
        client_tree, "-c", "import importlib.util as u; print(u.find_spec('knm.core'))"
    )
    assert done.stdout.strip() == "None", done.stderr


def test_the_client_tree_alone_runs_the_remote_commands(client_tree: Path) -> None:
    done = run_client(client_tree, "-m", "knm.cli.main", "--help")
    assert done.returncode == 0 and "exit codes:" in done.stdout, done.stderr
    done = run_client(client_tree, "-m", "knm.cli.main", "login", "--help")
    assert done.returncode == 0, done.stderr
    # Nothing listens on port 9: an API or network error (4), not a missing module.
    done = run_client(client_tree, "-m", "knm.cli.main", "task", "list")
    assert done.returncode == 4 and "Traceback" not in done.stderr, done.stderr
    done = run_client(client_tree, "-c", "from knm.client import AsyncClient, Client")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["serve"],
        ["worker"],
        ["migrate"],
        ["admin", "prune"],
        ["admin", "rotate-key"],
        ["admin", "user", "list"],
    ],
    ids=" ".join,
)
def test_the_client_tree_alone_refuses_the_local_commands_in_one_line(
    client_tree: Path, command: list[str]
) -> None:
    done = run_client(client_tree, "-m", "knm.cli.main", *command)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"knm {' '.join(command[:2])}: the knm server is not installed")
    assert "kube-node-manager" in done.stderr


def test_the_client_tree_alone_names_the_missing_server_for_knms_server_objects(
    client_tree: Path,
) -> None:
    done = run_client(client_tree, "-c", "import knm; knm.create_app")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"ModuleNotFoundError: knm.create_app: {knm.SERVER_MISSING}"
    )
    done = run_client(client_tree, "-c", "import knm; knm.nothing")
    assert "AttributeError: module 'knm' has no attribute 'nothing'" in done.stderr


def test_an_unknown_command_in_the_client_tree_is_a_usage_error(client_tree: Path) -> None:
    done = run_client(client_tree, "-m", "knm.cli.main", "bogus")
    assert done.returncode == 2 and "invalid choice" in done.stderr
    assert "Traceback" not in done.stderr
