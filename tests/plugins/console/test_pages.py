"""The console's page and assets as served (no browser): the headers that keep the browser to
knm's own files, the page under a prefix, and nothing else reachable."""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar import Litestar, get
from litestar.testing import TestClient

from knm.core.app import create_app
from knm.core.litestar_plugin import KnmPlugin
from knm.plugins.console.pages import ASSETS, CSP, STATIC

ROOT = Path(__file__).resolve().parents[3]
CONSOLE = STATIC.parent


@pytest.fixture(scope="module")
def client(knm_config: Any) -> Iterator[TestClient[Litestar]]:
    with TestClient(create_app(knm_config)) as started:
        yield started


def test_the_page_has_a_csp_without_unsafe_inline_and_loads_only_its_own_assets(
    client: TestClient[Litestar],
) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert '<script type="module" src="/console/app.js">' in page.text
    assert "<style" not in page.text and " style=" not in page.text and "onclick" not in page.text


def test_every_asset_is_served_with_its_type_and_the_same_headers(
    client: TestClient[Litestar],
) -> None:
    for name, asset in ASSETS.items():
        response = client.get(f"/console/{name}")
        assert response.status_code == 200, name
        assert response.content == asset.body
        assert response.headers["content-type"].split(";")[0] == asset.media_type
        assert response.headers["content-security-policy"] == CSP
        assert response.headers["x-content-type-options"] == "nosniff"
        again = client.get(f"/console/{name}", headers={"If-None-Match": asset.etag})
        assert again.status_code == 304


def test_no_script_of_the_console_parses_server_text_as_html() -> None:
    for name, asset in ASSETS.items():
        if name.endswith((".js", ".mjs")):
            text = asset.body.decode()
            for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
                assert sink not in text, f"{name} uses {sink}"


@pytest.mark.parametrize("name", ["nope.js", "..%2Fpages.py", "index.html", "__init__.py"])
def test_a_name_that_is_not_an_asset_is_404_in_the_envelope(
    client: TestClient[Litestar], name: str
) -> None:
    response = client.get(f"/console/{name}")
    assert response.status_code == 404
    assert response.json()["code"] == 404


@get("/")
async def host_home() -> str:
    return "the host's own home page"


def test_embedded_under_a_prefix_the_page_moves_and_the_hosts_root_stays(knm_config: Any) -> None:
    config = msgspec.structs.replace(knm_config, path_prefix="/ops")
    host = Litestar(route_handlers=[host_home], plugins=[KnmPlugin(config)])
    with TestClient(host) as client:
        page = client.get("/ops")
        slash = client.get("/ops/")
        asset = client.get("/ops/console/app.js")
        root = client.get("/")
    assert page.status_code == 200 and slash.status_code == 200
    assert root.text == "the host's own home page"
    assert 'src="/ops/console/app.js"' in page.text
    assert 'href="/ops/console/console.css"' in page.text
    assert asset.status_code == 200


def test_a_blocked_console_serves_nothing(knm_config: Any) -> None:
    config = msgspec.structs.replace(knm_config, blocked_plugins=["console"])
    with TestClient(create_app(config)) as client:
        assert client.get("/").status_code == 404
        assert client.get("/console/app.js").status_code == 404
        assert client.get("/api/v1/features").status_code == 200


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_a_write_to_the_page_is_405_in_the_envelope(
    client: TestClient[Litestar], method: str
) -> None:
    for path in ("/", "/console/app.js"):
        response = client.request(method, path)
        assert response.status_code == 405, path
        assert response.json()["code"] == 405


def _vendored() -> dict[str, str]:
    """THIRD_PARTY.md's table: each vendored file (relative to the console's package) and the
    sha256 recorded for it."""
    rows = re.findall(
        r"^\| `(static/[^`]+)` \|.*\| `([0-9a-f]{64})` \|$",
        (CONSOLE / "THIRD_PARTY.md").read_text(),
        re.M,
    )
    return dict(rows)


def test_the_vendored_js_yaml_is_the_release_recorded_unmodified_with_its_license() -> None:
    vendored = _vendored()
    assert "static/js-yaml.mjs" in vendored
    for path, recorded in vendored.items():
        assert hashlib.sha256((CONSOLE / path).read_bytes()).hexdigest() == recorded, path
    assert "4.3.2" in (CONSOLE / "THIRD_PARTY.md").read_text()
    license_text = (STATIC / "js-yaml.LICENSE.txt").read_text()
    assert "The MIT License" in license_text and "Vitaly Puzrin" in license_text


def test_the_vendored_es_module_is_served_as_javascript(client: TestClient[Litestar]) -> None:
    response = client.get("/console/js-yaml.mjs")
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == "text/javascript"
    assert response.content == (STATIC / "js-yaml.mjs").read_bytes()
    assert "export {" in response.text


def test_every_file_of_the_console_is_shipped_as_package_data() -> None:
    """The server's wheel carries what the console serves, vendors and credits: each file of
    the package that is not Python matches one of pyproject.toml's package-data globs."""
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["*"]
    shipped = {path for pattern in globs for path in CONSOLE.glob(pattern)}
    files = {
        path
        for path in CONSOLE.rglob("*")
        if path.is_file() and path.suffix not in {".py", ".pyc"} and "__pycache__" not in path.parts
    }
    assert {STATIC / "js-yaml.mjs", STATIC / "js-yaml.LICENSE.txt"} <= files
    assert files - shipped == set()
