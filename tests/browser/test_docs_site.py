"""The documentation site works offline: built strictly (as `make docs` does), served by a static
server on loopback, and read in Chromium with every other origin blocked. No page may ask another
host for anything (a font, a script, an emoji, analytics), no request may fail, and no console
error may appear. The pages a newcomer comes for are one click from the home page."""

from __future__ import annotations

import functools
import http.server
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.browser.conftest import Console, screenshot

ROOT = Path(__file__).resolve().parents[2]
MKDOCS = Path(sys.executable).parent / "mkdocs"

# Pages across the site's sections, generated ones included.
PAGES = [
    "index.html",
    "getting-started/index.html",
    "learning-path.html",
    "concepts/architecture.html",
    "guides/protect-your-api.html",
    "guides/what-happens-when.html",
    "security/index.html",
    "reference/auth-server-api.html",
    "reference/settings.html",
    "reference/cli.html",
    "reference/library.html",
    "src/shared/verification.py.html",
]

# What a newcomer looks for, and the heading the link from the home page must land on.
FROM_HOME = {
    "protect my own API": "Protect your API",
    "deploy": "Deploy",
    "rotate the signing keys": "Signing keys",
    "what happens when Redis is down": "Redis is down",
    "learn how auth is done": "The learning path",
}

# Attributes through which a page makes the browser load something (anchors only navigate).
LOADING = re.compile(
    r"<(?:script|img|iframe|source|audio|video)\b[^>]*\bsrc=\"([^\"]+)\""
    r"|<link\b[^>]*\bhref=\"([^\"]+)\""
    r"|url\(['\"]?(https?://[^)'\"]+)"
)


@pytest.fixture(scope="module")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site as `make docs` builds it (strict), into a directory of this run's own."""
    site = tmp_path_factory.mktemp("docs-site") / "site"
    result = subprocess.run(
        [str(MKDOCS), "build", "--strict", "--clean", "--site-dir", str(site)],
        cwd=ROOT,
        env=os.environ | {"NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr[-4000:]}"
    return site


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site_url(built_site: Path) -> Iterator[str]:
    """A static file server for the built site on a free loopback port."""
    handler = functools.partial(_QuietHandler, directory=str(built_site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def console() -> Console:
    """No failed load is expected on the docs site, whatever its status."""
    return Console(statuses=set())


@dataclass
class Network:
    """Every request the pages made that left the site's origin, or failed."""

    origin: str
    foreign: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def route(self, route: Any) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" == self.origin or parts.scheme in {"data", "blob"}:
            route.continue_()
        else:
            self.foreign.append(url)
            route.abort()

    def _request_failed(self, request: Any) -> None:
        # net::ERR_ABORTED is the page itself cancelling a load it no longer needs (the search
        # worker still loading when the test moves to the next page); a load the server or the
        # network refused fails with another code, and a blocked origin is in `foreign`.
        if request.failure != "net::ERR_ABORTED":
            self.failed.append(f"{request.url}: {request.failure}")

    def watch(self, page: Any) -> None:
        page.on("requestfailed", self._request_failed)
        page.on(
            "response",
            lambda response: (
                self.failed.append(f"{response.url}: {response.status}")
                if response.status >= 400
                else None
            ),
        )


@pytest.fixture
def offline(new_context: Callable[..., Any], site_url: str) -> Iterator[tuple[Any, Network]]:
    """A browser context that can reach the site's server and nothing else."""
    context = new_context()
    network = Network(origin=site_url)
    context.route("**/*", network.route)
    page = context.new_page()
    network.watch(page)
    yield page, network
    assert not network.foreign, "requests to another origin:\n" + "\n".join(network.foreign)
    assert not network.failed, "failed requests:\n" + "\n".join(network.failed)


def test_the_built_html_loads_nothing_from_another_host(built_site: Path) -> None:
    foreign = []
    for page in built_site.rglob("*.html"):
        for match in LOADING.finditer(page.read_text(encoding="utf-8")):
            url = next(group for group in match.groups() if group)
            if urlsplit(url).scheme in {"http", "https"} or url.startswith("//"):
                foreign.append(f"{page.relative_to(built_site)}: {url}")
    assert not foreign, "\n".join(foreign)


def test_every_page_renders_offline(offline: tuple[Any, Network], site_url: str) -> None:
    page, _ = offline
    for path in PAGES:
        page.goto(f"{site_url}/{path}", wait_until="networkidle")
        heading = page.locator("article h1").first
        assert heading.is_visible(), path
        assert heading.inner_text().strip(), path


def test_search_works_offline(offline: tuple[Any, Network], site_url: str) -> None:
    page, _ = offline
    page.goto(f"{site_url}/index.html", wait_until="networkidle")
    search = page.get_by_role("textbox", name="Search")
    search.click()
    search.press_sequentially("revocation feed", delay=20)  # typed, as a person does
    results = page.locator(".md-search-result__item")
    # The browser builds the search index in a worker: generous on a loaded machine.
    results.first.wait_for(state="visible", timeout=60_000)
    assert results.count() > 0


def test_a_newcomer_finds_each_task_from_the_home_page(
    offline: tuple[Any, Network], site_url: str
) -> None:
    page, _ = offline
    page.set_viewport_size({"width": 1280, "height": 860})
    page.goto(f"{site_url}/index.html", wait_until="networkidle")
    screenshot(page, "docs-site")
    for task, heading in FROM_HOME.items():
        page.goto(f"{site_url}/index.html", wait_until="networkidle")
        row = page.locator("article table tr", has_text=task)
        assert row.count() == 1, task
        row.locator("a").first.click()
        page.wait_for_load_state("networkidle")
        target = page.locator("article").get_by_role("heading", name=heading, exact=False).first
        assert target.is_visible(), f"{task}: no heading {heading!r} at {page.url}"
