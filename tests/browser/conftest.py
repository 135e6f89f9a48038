"""Browser tests: the web page in Debian's Chromium, against both services on loopback.

Playwright's Python package drives `/usr/bin/chromium` (headless, `executable_path`); no browser
is ever downloaded. Without Chromium the tests are skipped, and the last lines of the run say
so loudly (`.ci/run` installs it).

Each test module starts its own auth server and resource server (fresh SQLite databases) with
the settings it needs; each test gets fresh browser contexts (separate cookie jars), and fails
on any console error, uncaught exception or Content-Security-Policy violation it did not expect.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS, chromium_missing
from tests.databases import PostgresDatabases, fresh_database
from tests.e2e.servers import BIN, Server, auth_env, free_port, resource_env, start_server

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
PASSWORD = "correct horse battery staple 42"

# Statuses the page asks for on purpose (a visitor without a session, a wrong password, an
# expired token, a weak password...). Chromium logs every such answer as "Failed to load
# resource"; anything else in the console is a failure.
EXPECTED_STATUSES = frozenset({400, 401, 403, 409, 422, 429})
FAILED_LOAD = re.compile(r"Failed to load resource: the server responded with a status of (\d+)")

# Every page reports CSP violations and records how its session state changed (a reload must
# go from "loading" to "signed-in" without "signed-out" in between). Playwright adds this
# through the DevTools protocol, so the page's own CSP does not apply to it.
INIT_SCRIPT = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI || "inline"}`);
});
window.__states = [];
new MutationObserver((records) => {
  for (const record of records) {
    if (record.attributeName === "data-state" && record.target === document.documentElement) {
      window.__states.push(document.documentElement.dataset.state);
    }
  }
}).observe(document, { subtree: true, attributes: true, attributeFilter: ["data-state"] });
"""


# --- Skipping without Chromium, loudly ---------------------------------------------------------


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    reason = chromium_missing()
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.browser)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


def _skipped_browser_tests(terminalreporter: Any) -> int:
    try:
        prefix = Path(__file__).parent.relative_to(terminalreporter.config.rootpath).as_posix()
    except ValueError:
        prefix = "tests/browser"
    return sum(
        1
        for report in terminalreporter.stats.get("skipped", [])
        if getattr(report, "nodeid", "").startswith(prefix + "/")
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    """After pytest's own summary, as the very last lines: the browser tests did not run."""
    terminalreporter = config.pluginmanager.get_plugin("terminalreporter")
    if terminalreporter is None:
        return
    skipped = _skipped_browser_tests(terminalreporter)
    if not skipped:
        return
    terminalreporter.write_sep("!", "BROWSER TESTS SKIPPED", red=True, bold=True)
    terminalreporter.write_line(
        f"{skipped} browser test(s) did not run: {chromium_missing() or 'see the skip reasons'}",
        red=True,
        bold=True,
    )
    terminalreporter.write_line(
        "The web page is untested. Install Chromium (apt-get install -y chromium; .ci/run does)"
        " and run make test again.",
        red=True,
        bold=True,
    )
    terminalreporter.write_sep("!", red=True, bold=True)


# --- The browser ---------------------------------------------------------------------------


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """One headless Chromium for the package. Package-scoped on purpose: Playwright's sync API
    marks an event loop as running in this thread while it lives, which async tests elsewhere
    in the suite must not meet."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Console:
    """What the pages of one test said in their consoles that nobody expected."""

    problems: list[str] = field(default_factory=list)
    statuses: set[int] = field(default_factory=lambda: set(EXPECTED_STATUSES))
    patterns: list[re.Pattern[str]] = field(default_factory=list)

    def allow(self, *, statuses: tuple[int, ...] = (), pattern: str | None = None) -> None:
        self.statuses |= set(statuses)
        if pattern:
            self.patterns.append(re.compile(pattern))

    def attach(self, page: Any) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"uncaught exception: {error}"))

    def _console(self, message: Any) -> None:
        text = message.text
        is_csp = "Content Security Policy" in text or text.startswith("CSP violation")
        if message.type != "error" and not is_csp:
            return
        failed = FAILED_LOAD.search(text)
        if failed and int(failed.group(1)) in self.statuses:
            return
        if any(pattern.search(text) for pattern in self.patterns):
            return
        where = (message.location or {}).get("url", "")
        self.problems.append(f"console {message.type}: {text} {where}".strip())


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def new_context(browser: Any, console: Console) -> Iterator[Callable[..., Any]]:
    """Browser contexts of this test (each its own cookie jar, like separate browsers); the
    test fails on unexpected console errors in any of their pages."""
    contexts: list[Any] = []

    def make(**options: Any) -> Any:
        options.setdefault("viewport", {"width": 1280, "height": 860})
        options.setdefault("reduced_motion", "reduce")
        context = browser.new_context(**options)
        context.set_default_timeout(10_000)
        context.add_init_script(INIT_SCRIPT)
        context.on("page", console.attach)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()
    assert not console.problems, "\n".join(console.problems)


@pytest.fixture
def context(new_context: Callable[..., Any]) -> Any:
    return new_context()


@pytest.fixture
def page(context: Any) -> Any:
    return context.new_page()


# --- The system under test -------------------------------------------------------------------


@dataclass
class PageSystem:
    """Both services on loopback, and what a test needs to know about them."""

    auth: Server
    resource: Server
    servers: list[Server]
    auth_env: dict[str, str] = field(default_factory=dict)

    def cli(self, *args: str) -> str:
        """`auth-server ARGS` against this auth server's database; its stdout."""
        result = subprocess.run(
            [str(BIN / "auth-server"), *args],
            text=True,
            capture_output=True,
            env=self.auth_env,
            check=False,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    @property
    def url(self) -> str:
        """The web page."""
        return f"{self.resource.url}/"

    @property
    def token_endpoint(self) -> str:
        return f"{self.auth.url}/token"

    def register(self, username: str, password: str = PASSWORD) -> str:
        response = httpx.post(
            f"{self.auth.url}/users",
            json={"username": username, "email": f"{username}@example.com", "password": password},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        return username

    def api_token(self, username: str, password: str = PASSWORD) -> str:
        """An access token of the plain `web` client (what curl would use)."""
        response = httpx.post(
            self.token_endpoint,
            data={
                "grant_type": "password",
                "client_id": "web",
                "username": username,
                "password": password,
            },
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def notes(self, token: str) -> list[dict[str, Any]]:
        response = httpx.get(
            f"{self.resource.url}/notes?limit=100",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    def create_note(self, token: str, title: str, body: str = "") -> None:
        response = httpx.post(
            f"{self.resource.url}/notes",
            json={"title": title, "body": body},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert response.status_code == 201, response.text

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()


def start_page_system(
    root: Path,
    sqlite_templates: dict[str, Path],
    pg_databases: PostgresDatabases,
    *,
    auth: dict[str, str] | None = None,
    resource: dict[str, str] | None = None,
) -> PageSystem:
    """An auth server and a resource server whose page origin is allowed by the auth server's
    credentialed CORS (the page's client requires its exact origin)."""
    auth_db = fresh_database("sqlite", "auth", root, sqlite_templates, pg_databases)
    resource_db = fresh_database("sqlite", "resource", root, sqlite_templates, pg_databases)
    auth_port, resource_port = free_port(), free_port()
    issuer = f"http://127.0.0.1:{auth_port}"
    env_auth = (
        auth_env(issuer, auth_db, root / "auth-var")
        | {
            "AUTH_CORS_ORIGINS": f"http://127.0.0.1:{resource_port}",
            "AUTH_REGISTRATION_IP_LIMIT": "1000",
            "AUTH_LOGIN_IP_LIMIT": "1000",
        }
        | (auth or {})
    )
    env_resource = (
        resource_env(issuer, resource_db, root / "resource-var")
        | {"RESOURCE_REVOCATION_POLL_INTERVAL": "1"}
        | (resource or {})
    )
    servers: list[Server] = []
    try:
        servers.append(start_server("auth", "auth-server", auth_port, env_auth, root))
        servers.append(
            start_server("resource", "resource-server", resource_port, env_resource, root)
        )
    except BaseException:
        for server in servers:
            server.stop()
        raise

    return PageSystem(auth=servers[0], resource=servers[1], servers=servers, auth_env=env_auth)


@pytest.fixture(scope="module")
def system_factory(
    tmp_path_factory: pytest.TempPathFactory,
    _sqlite_templates: dict[str, Path],
    pg_databases: PostgresDatabases,
) -> Iterator[Callable[..., PageSystem]]:
    """Start the module's system with its own settings; stopped when the module is done."""
    started: list[PageSystem] = []

    def start(**settings: Any) -> PageSystem:
        root = tmp_path_factory.mktemp("browser-system")
        system = start_page_system(root, _sqlite_templates, pg_databases, **settings)
        started.append(system)
        return system

    yield start
    for system in started:
        system.stop()


def screenshot(page: Any, name: str, *, full_page: bool = False) -> None:
    """docs/screenshots/<name>.png, for the README and the docs, when NOTES_AUTH_SCREENSHOTS is set
    (`make screenshots`): a test run leaves the committed files alone."""
    if not os.environ.get("NOTES_AUTH_SCREENSHOTS"):
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(
        path=str(SCREENSHOTS / f"{name}.png"),
        full_page=full_page,
        animations="disabled",
        caret="hide",
    )
