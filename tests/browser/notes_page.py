"""The web page as a person uses it: what they click and read, for the browser tests."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import Locator, Page, expect

REFRESH_COOKIE = "notes_auth_refresh"


@dataclass
class NotesPage:
    page: Page
    url: str

    # --- Getting in ---------------------------------------------------------------------------

    def open(self, route: str = "") -> NotesPage:
        self.page.goto(f"{self.url}{route}")
        return self

    def expect_login_form(self) -> None:
        """The signed-out view: its "Log in" button (the form itself is the auth server's)."""
        expect(self.page.locator("#auth-view")).to_be_visible()
        expect(self.page.get_by_role("button", name="Log in", exact=True)).to_be_visible()

    def expect_notes(self) -> None:
        expect(self.page.locator("#notes-view")).to_be_visible()
        expect(self.page.locator("#notes-loading")).to_be_hidden()

    def start_log_in(self) -> HostedPage:
        """ "Log in" on the notes page: the browser goes to the auth server's sign-in page."""
        self.page.get_by_role("button", name="Log in", exact=True).click()
        hosted = HostedPage(self.page)
        hosted.expect_sign_in()
        return hosted

    def log_in(self, username: str, password: str) -> None:
        """Log in as a person does: "Log in", then the hosted sign-in form, then back here."""
        if urlsplit(self.page.url).path != "/login":  # not yet on the hosted sign-in page
            self.start_log_in()
        HostedPage(self.page).sign_in(username, password)

    def sign_up(self, username: str, email: str, password: str) -> None:
        if urlsplit(self.page.url).path != "/signup":
            self.page.get_by_role("button", name="Create an account").click()
        HostedPage(self.page).sign_up(username, email, password)

    def log_out(self) -> None:
        """Log out: the page's session, then the auth server's sign-in (its end-session
        endpoint sends the browser back here)."""
        with self.page.expect_response(lambda r: urlsplit(r.url).path == "/logout"):
            self.page.locator("#logout").click()
        self.expect_login_form()

    def notice(self) -> Locator:
        return self.page.locator("#auth-notice")

    # --- Notes --------------------------------------------------------------------------------

    def add_note(self, title: str, body: str = "") -> Locator:
        self.page.locator("#note-title").fill(title)
        self.page.locator("#note-body").fill(body)
        self.page.get_by_role("button", name="Add note").click()
        note = self.note(title)
        expect(note).to_be_visible()
        expect(note).not_to_have_class(re.compile(r"\bpending\b"))
        return note

    def note(self, title: str) -> Locator:
        """The card whose title is `title` (while it is being edited too)."""
        exact = re.compile(f"^{re.escape(title)}$")
        heading = self.page.locator(".note-title").filter(has_text=exact)
        return self.page.locator("#notes > li").filter(has=heading)

    def notes(self) -> Locator:
        return self.page.locator("#notes > li")

    def wait_saved(self) -> None:
        expect(self.page.locator("#notes > li.pending")).to_have_count(0)

    # --- Account ------------------------------------------------------------------------------

    def open_account(self) -> None:
        self.page.locator("#nav").get_by_role("link", name="Account").click()

    def open_notes(self) -> None:
        self.page.locator("#nav").get_by_role("link", name="Notes").click()

    # --- What the page keeps ------------------------------------------------------------------

    def readable_storage(self) -> dict[str, Any]:
        """Everything page script can read: Web Storage and document.cookie."""
        result: dict[str, Any] = self.page.evaluate(
            """() => ({
                local: Object.fromEntries(Object.entries(localStorage)),
                session: Object.fromEntries(Object.entries(sessionStorage)),
                cookie: document.cookie,
            })"""
        )
        return result

    def states(self) -> list[str]:
        """The page's session states since it loaded (see INIT_SCRIPT)."""
        states: list[str] = self.page.evaluate("() => window.__states")
        return states


@dataclass
class HostedPage:
    """The auth server's hosted pages (sign-in, sign-up, consent, sign-out), by their labels."""

    page: Page

    def expect_sign_in(self) -> None:
        expect(self.page.get_by_role("heading", name="Sign in")).to_be_visible()

    def sign_in(self, username: str, password: str) -> None:
        self.expect_sign_in()
        form = self.page.locator("form[action$='/login']")
        form.get_by_label("Username or email").fill(username)
        form.get_by_label("Password", exact=True).fill(password)
        form.get_by_role("button", name="Sign in").click()

    def sign_up(self, username: str, email: str, password: str) -> None:
        expect(self.page.get_by_role("heading", name="Create your account")).to_be_visible()
        form = self.page.locator("form[action$='/signup']")
        form.get_by_label("Username").fill(username)
        form.get_by_label("Email").fill(email)
        form.get_by_label("Password").fill(password)
        form.get_by_role("button", name="Create account").click()

    def alert(self) -> Locator:
        return self.page.locator("#form-error")


@dataclass
class TokenTraffic:
    """The page's requests to the token endpoint, as a browser's network panel shows them."""

    token_endpoint: str
    events: list[tuple[str, str]] = field(default_factory=list)  # (start|end, grant_type)
    finished: list[Any] = field(default_factory=list)  # the requests, in the order they ended

    def watch(self, target: Any) -> TokenTraffic:
        target.on("request", self._request)
        target.on("requestfinished", self._finished)
        target.on("requestfailed", self._finished)
        return self

    def _grant(self, request: Any) -> str | None:
        if request.url != self.token_endpoint or request.method != "POST":
            return None
        form = parse_qs(request.post_data or "")
        return str(form.get("grant_type", ["?"])[0])

    def _request(self, request: Any) -> None:
        grant = self._grant(request)
        if grant:
            self.events.append(("start", grant))

    def _finished(self, request: Any) -> None:
        grant = self._grant(request)
        if not grant:
            return
        self.events.append(("end", grant))
        self.finished.append(request)

    def issued(self) -> list[str]:
        """The access tokens the page received, in order."""
        tokens = []
        for request in self.finished:
            response = request.response()
            if response is not None and response.status == 200:
                tokens.append(str(response.json()["access_token"]))
        return tokens

    def refreshes(self) -> int:
        return sum(1 for kind, grant in self.events if kind == "start" and grant == "refresh_token")

    def overlapped(self) -> bool:
        """Whether two token requests were ever in flight at once."""
        in_flight = 0
        for kind, _ in self.events:
            in_flight += 1 if kind == "start" else -1
            if in_flight > 1:
                return True
        return False


def record_statuses(page: Page, url: str) -> list[int]:
    """The statuses of the page's answers from `url`, in order."""
    statuses: list[int] = []

    def on_response(response: Any) -> None:
        if response.url == url:
            statuses.append(response.status)

    page.on("response", on_response)
    return statuses


def wait_until(condition: Callable[[], bool], timeout: float = 10, what: str = "condition") -> None:
    """Poll a cheap check (a request to a server) until it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)
