"""The browser the console's tests drive: the OS's Chromium through the OS's chromedriver,
headless, nothing downloaded (Selenium Manager is never asked: the driver's path is given),
and ``Console``, the waits and finds the tests share."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from knm.testing.database import TEST_ADMIN_PASSWORD
from knm.testing.process import KnmProcess

try:
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:  # the dev extra brings it; without it the browser tests skip
    webdriver = None

CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: Seconds any one wait in the browser may take on a loaded machine.
WAIT = 60


def api(server: KnmProcess, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=server.api, headers=headers, timeout=30)


def login_token(server: KnmProcess, username: str, password: str) -> str:
    with api(server) as client:
        answer = client.post("/auth/login", json={"username": username, "password": password})
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]["token"]


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if webdriver is None:
        pytest.skip("selenium is not installed (the dev extra installs it)")
    if CHROMIUM is None or not CHROMEDRIVER.exists():
        pytest.skip(
            "chromium and chromium-driver are not installed (scripts/test.sh installs them)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container has no user namespaces for the sandbox
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
        "--no-first-run",
        "--disable-extensions",
    ):
        options.add_argument(argument)
    # "performance": the DevTools network events, to see every URL the page asks for.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    # Chromium keeps its profile and shared memory in TMPDIR (org.chromium.Chromium.*) and
    # leaves them there: in the test's own temp dir, not the machine's.
    own = tmp_path_factory.mktemp("chromium")
    options.add_argument(f"--user-data-dir={own / 'profile'}")
    service = Service(executable_path=str(CHROMEDRIVER), env={**os.environ, "TMPDIR": str(own)})
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(WAIT)
    driver.set_script_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


class Console:
    """The browser on the console of ``server``."""

    def __init__(self, driver: Any, server: KnmProcess, shots: Path) -> None:
        self.driver = driver
        self.server = server
        self.shots = shots

    def open(self, fragment: str = "") -> None:
        self.driver.get(f"{self.server.base_url}/{fragment}")

    def wait(self, until: Callable[[Any], Any], timeout: float = WAIT) -> Any:
        # An element the page replaced while a test held it is looked for again, not an error.
        return WebDriverWait(
            self.driver,
            timeout,
            poll_frequency=0.1,
            ignored_exceptions=(StaleElementReferenceException,),
        ).until(until)

    def find(self, css: str) -> Any:
        return self.wait(lambda d: d.find_element(By.CSS_SELECTOR, css))

    def all(self, css: str) -> list[Any]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def choose(self, css: str, value: str) -> None:
        """Picks the option of value ``value`` in the select ``css`` (found again if the page
        redrew it in between)."""
        self.wait(
            lambda d: Select(d.find_element(By.CSS_SELECTOR, css)).select_by_value(value) or True
        )

    def click(self, css: str) -> None:
        """Clicks ``css`` (found again if the page redrew it in between)."""
        self.wait(lambda d: d.find_element(By.CSS_SELECTOR, css).click() or True)

    def login(self, username: str, password: str) -> None:
        self.open()
        # A fresh page with no session: the one of an earlier test is forgotten.
        self.driver.execute_script("sessionStorage.clear()")
        self.driver.refresh()
        self.find("#username").send_keys(username)
        self.find("#password").send_keys(password)
        self.find("#login").click()
        self.wait(lambda d: username in d.find_element(By.ID, "who").text)

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def cells(self, state: str) -> list[Any]:
        return self.all(f"#grid .cell.n-{state}")

    def urls(self) -> list[str]:
        """Every URL the page requested (HTTP and WebSocket) since the last call."""
        found = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            params = message.get("params", {})
            if message.get("method") == "Network.requestWillBeSent":
                found.append(params["request"]["url"])
            elif message.get("method") == "Network.webSocketCreated":
                found.append(params["url"])
        return found

    def severe_logs(self) -> list[dict[str, Any]]:
        """Errors since the last call: a CSP violation or a script error shows here (a request
        the API answered with an error is the test's own business)."""
        return [
            entry
            for entry in self.driver.get_log("browser")
            if entry["level"] == "SEVERE" and entry.get("source") != "network"
        ]


@pytest.fixture(scope="module")
def admin(server: KnmProcess) -> Iterator[httpx.Client]:
    """The API as knm's first admin, on ``server`` (each test module defines it)."""
    with api(server, login_token(server, "admin", TEST_ADMIN_PASSWORD)) as client:
        yield client


@pytest.fixture
def console(browser: Any, server: KnmProcess, tmp_path: Path) -> Console:
    """The browser on ``server`` (each test module defines it). Screenshots go to the test's
    temporary directory, or to ``KNM_CONSOLE_SCREENSHOTS`` when set (to look at every page
    after a run: ``KNM_CONSOLE_SCREENSHOTS=/tmp/shots bash scripts/test.sh tests/plugins/console``)."""
    chosen = os.environ.get("KNM_CONSOLE_SCREENSHOTS")
    shots = Path(chosen) if chosen else tmp_path / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    page = Console(browser, server, shots)
    page.severe_logs()  # an earlier test's are its own
    page.urls()
    return page
