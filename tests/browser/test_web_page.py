"""The web page in a real browser: signing up and logging in, the notes, what the page keeps
where script can read it, the words it uses when something fails, and its layout and policy.

One system for the module (the tests use users of their own); login lockout after 3 failures.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from playwright.sync_api import ViewportSize, expect

from tests.browser.conftest import PASSWORD, Console, PageSystem, screenshot
from tests.browser.notes_page import REFRESH_COOKIE, HostedPage, NotesPage, TokenTraffic

pytestmark = pytest.mark.timeout(90)

NO_READABLE_TOKEN = {"local": {}, "session": {}, "cookie": ""}
WIDE: ViewportSize = {"width": 1440, "height": 900}


@pytest.fixture(scope="module")
def system(system_factory: Callable[..., PageSystem]) -> PageSystem:
    return system_factory(auth={"AUTH_LOGIN_FAILURE_LIMIT": "3"})


@pytest.fixture
def app(page: Any, system: PageSystem) -> NotesPage:
    return NotesPage(page, system.url)


def refresh_cookies(context: Any) -> list[dict[str, Any]]:
    return [c for c in context.cookies() if c["name"] == REFRESH_COOKIE]


def test_sign_up_on_the_hosted_page_shows_the_policy_then_comes_back_with_no_readable_token(
    app: NotesPage, context: Any, system: PageSystem
) -> None:
    app.page.set_viewport_size(WIDE)
    app.open()
    app.expect_login_form()
    expect(app.page.locator("html")).to_have_attribute("data-state", "signed-out")
    expect(app.page.get_by_role("button", name="Log in", exact=True)).to_be_focused()
    screenshot(app.page, "login")

    # "Create an account" goes to the auth server's sign-up page (the page never sees a password).
    app.page.get_by_role("button", name="Create an account").click()
    hosted = HostedPage(app.page)
    assert app.page.url.startswith(f"{system.auth.url}/signup?flow=")
    # The password policy's 422, next to the password field, announced.
    hosted.sign_up("alice", "alice@example.com", "password123")
    error = app.page.locator("#password-error")
    expect(error).to_have_text("The password is one of the most common passwords.")
    expect(error).to_have_attribute("role", "alert")
    expect(app.page.locator("#password")).to_have_attribute("aria-invalid", "true")
    expect(app.page.locator("#password")).to_be_focused()
    expect(app.page.get_by_label("Username")).to_have_value("alice")
    hosted.sign_up("alice", "alice@example.com", "short")
    expect(error).to_have_text("The password must be at least 10 characters.")
    screenshot(app.page, "sign-up-errors")

    # A taken name, next to the username field.
    system.register("bob")
    hosted.sign_up("bob", "someone-else@example.com", PASSWORD)
    expect(app.page.locator("#username-error")).to_contain_text("already registered")
    expect(app.page.locator("#password-error")).to_be_empty()

    # Signed up, signed in, and back on the notes page (a 303 to another origin after a form
    # POST, which a `form-action 'self'` policy alone would block in Chromium).
    hosted.sign_up("alice", "alice@example.com", PASSWORD)
    app.expect_notes()
    assert app.page.url == f"{system.url}#/notes"
    expect(app.page.locator("#notes-greeting")).to_have_text("Logged in as alice")
    expect(app.page.locator("#who-name")).to_have_text("alice")
    expect(app.page.locator("#notes-empty")).to_be_visible()

    # No token where page script can read it (the PKCE verifier and state are gone from
    # sessionStorage, the code from the address); the refresh token is an HttpOnly cookie.
    assert app.readable_storage() == NO_READABLE_TOKEN
    assert "code=" not in app.page.url
    assert app.page.evaluate("() => history.length") >= 1
    cookies = refresh_cookies(context)
    assert {c["path"] for c in cookies} == {"/token", "/revoke"}
    assert all(c["httpOnly"] and c["sameSite"] == "Strict" for c in cookies)
    assert all(c["domain"] == urlsplit(system.auth.url).hostname for c in cookies)
    # The auth server's browser session: its own HttpOnly, SameSite=Lax cookie.
    browser = [c for c in context.cookies() if c["name"] == "notes_auth_session"]
    assert len(browser) == 1 and browser[0]["httpOnly"] and browser[0]["sameSite"] == "Lax"


def test_notes_are_written_edited_in_place_and_deleted_with_a_confirmation_and_undo(
    app: NotesPage, system: PageSystem
) -> None:
    page = app.page
    page.set_viewport_size(WIDE)
    system.register("carol")
    app.open()
    app.log_in("carol", PASSWORD)
    app.expect_notes()
    expect(page.locator("#notes-empty")).to_be_visible()

    app.add_note("Groceries", "Milk\nEggs\nCoffee beans")
    app.add_note("Trip to Lisbon", "Book the train on Friday.\nPastéis de nata at Manteigaria.")
    app.add_note("Book ideas", "A detective who is also a lighthouse keeper.")
    expect(page.locator("#notes-empty")).to_be_hidden()
    titles = page.locator("#notes .note-title")
    expect(titles).to_have_text(["Book ideas", "Trip to Lisbon", "Groceries"])
    page.locator("#note-title").blur()
    screenshot(page, "notes")

    # Edit in place: the title gets the focus; Save shows the change.
    groceries = app.note("Groceries")
    groceries.get_by_role("button", name="Edit “Groceries”").click()
    editor = groceries.locator("form.note-edit")
    expect(editor).to_be_visible()
    expect(editor.get_by_label("Title")).to_be_focused()
    editor.get_by_label("Note").fill("Milk\nEggs\nCoffee beans\nBasil")
    screenshot(page, "editing")
    editor.get_by_role("button", name="Save").click()
    expect(editor).to_be_hidden()
    expect(groceries.locator(".note-body")).to_have_text("Milk\nEggs\nCoffee beans\nBasil")
    expect(groceries.locator(".note-time")).to_contain_text("Edited")
    app.wait_saved()

    # Escape leaves an edit without saving it.
    groceries.get_by_role("button", name="Edit “Groceries”").click()
    editor.get_by_label("Title").fill("Not this")
    page.keyboard.press("Escape")
    expect(editor).to_be_hidden()
    expect(groceries.locator(".note-title")).to_have_text("Groceries")

    deletes: list[str] = []

    def on_request(request: Any) -> None:
        if request.method == "DELETE":
            deletes.append(request.url)

    page.on("request", on_request)

    # Delete asks first; "Keep it" keeps it.
    ideas = app.note("Book ideas")
    ideas.get_by_role("button", name="Delete “Book ideas”").click()
    confirm = ideas.locator(".note-confirm")
    expect(confirm).to_contain_text("Delete “Book ideas”?")
    expect(confirm.get_by_role("button", name="Delete", exact=True)).to_be_focused()
    confirm.get_by_role("button", name="Keep it").click()
    expect(confirm).to_be_hidden()

    # Confirmed, the note goes at once; Undo brings it back, and nothing was sent.
    ideas.get_by_role("button", name="Delete “Book ideas”").click()
    confirm.get_by_role("button", name="Delete", exact=True).click()
    expect(ideas).to_have_count(0)
    toast = page.locator(".toast")
    expect(toast).to_contain_text("Deleted “Book ideas”.")
    screenshot(page, "deleted-with-undo")
    toast.get_by_role("button", name="Undo").click()
    expect(titles).to_have_text(["Book ideas", "Trip to Lisbon", "Groceries"])
    assert deletes == []

    # Deleted for real: closing the toast sends the delete at once.
    ideas.get_by_role("button", name="Delete “Book ideas”").click()
    confirm.get_by_role("button", name="Delete", exact=True).click()
    with page.expect_response(lambda r: r.request.method == "DELETE") as deleted:
        toast.get_by_role("button", name="Dismiss").click()
    assert deleted.value.status == 204
    expect(titles).to_have_text(["Trip to Lisbon", "Groceries"])

    # The server agrees.
    stored = system.notes(system.api_token("carol"))
    assert [n["title"] for n in stored] == ["Trip to Lisbon", "Groceries"]
    assert stored[1]["body"] == "Milk\nEggs\nCoffee beans\nBasil"


def test_a_reload_restores_the_session_without_the_login_form_and_leaves_no_token(
    app: NotesPage, system: PageSystem
) -> None:
    system.register("dave")
    app.open()
    app.log_in("dave", PASSWORD)
    app.expect_notes()
    app.add_note("Written before the reload", "Still here afterwards.")
    assert app.readable_storage() == NO_READABLE_TOKEN

    app.page.reload()
    app.expect_notes()
    expect(app.note("Written before the reload")).to_be_visible()
    # From "loading" straight to "signed-in": the login form was never shown in between.
    states = app.states()
    assert "signed-out" not in states and states[-1] == "signed-in", states
    assert app.readable_storage() == NO_READABLE_TOKEN

    # A second tab of the same browser is logged in too.
    other = NotesPage(app.page.context.new_page(), system.url).open()
    other.expect_notes()
    expect(other.note("Written before the reload")).to_be_visible()


def test_logging_out_revokes_the_session_and_ends_the_auth_servers_sign_in(
    app: NotesPage, context: Any, system: PageSystem
) -> None:
    traffic = TokenTraffic(system.token_endpoint).watch(app.page)
    system.register("erin")
    app.open()
    app.log_in("erin", PASSWORD)
    app.expect_notes()
    access_token = traffic.issued()[-1]
    assert refresh_cookies(context)

    with app.page.expect_response(f"{system.auth.url}/revoke") as revoked:
        app.log_out()
    assert revoked.value.status == 200
    expect(app.notice()).to_have_text("You're logged out. See you soon.")
    assert app.page.url == f"{system.url}#/login"  # back from the end-session endpoint
    assert refresh_cookies(context) == []
    assert [c for c in context.cookies() if c["name"] == "notes_auth_session"] == []
    # The access token the page held is refused: the session is over, not just forgotten.
    me = httpx.get(
        f"{system.auth.url}/users/me",
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=10,
    )
    assert me.status_code == 401

    app.page.reload()
    app.expect_login_form()
    expect(app.notice()).to_be_empty()
    # The auth server's sign-in ended too: logging in asks for the password again.
    app.start_log_in()


def authorize_url(system: PageSystem, client_id: str, redirect_uri: str) -> tuple[str, str]:
    """An app's authorization request (code + PKCE): its URL and the verifier."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": "openid notes:read",
            "state": "app-state",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    return f"{system.auth.url}/authorize?{query}", verifier


def test_one_sign_in_serves_a_second_app_and_a_third_party_after_consent(
    app: NotesPage, system: PageSystem
) -> None:
    page = app.page
    system.register("sso-user")
    app.open()
    app.log_in("sso-user", PASSWORD)
    app.expect_notes()
    # The apps' redirect URI: any page that answers (a route can't stand in for a redirect's
    # target in Playwright); the test reads the code from the address.
    callback = f"{system.resource.url}/healthz"
    system.cli("clients", "create", "second-app", "--first-party", "--redirect-uri", callback)
    system.cli("clients", "create", "outside-app", "--redirect-uri", callback)
    arrived: list[str] = []

    def the_app(route: Any) -> None:
        arrived.append(route.request.url)
        route.fulfill(
            status=200, content_type="text/html", body="<!doctype html><title>App</title>"
        )

    page.route(lambda url: url.startswith(callback), the_app)
    posted: list[str] = []
    page.on("request", lambda r: posted.append(r.url) if r.method == "POST" else None)

    # A second first-party app: straight back with a code, no page, no password.
    url, verifier = authorize_url(system, "second-app", callback)
    page.goto(url)
    expect(page).to_have_url(re.compile(f"^{re.escape(callback)}\\?"))
    arrived.append(page.url)
    answer = parse_qs(urlsplit(arrived[-1]).query)
    assert answer["state"] == ["app-state"] and answer["iss"] == [system.auth.url]
    assert posted == []
    token = httpx.post(
        system.token_endpoint,
        data={
            "grant_type": "authorization_code",
            "code": answer["code"][0],
            "redirect_uri": callback,
            "code_verifier": verifier,
            "client_id": "second-app",
        },
        timeout=10,
    )
    assert token.status_code == 200 and token.json()["id_token"]

    # A third-party app: the consent page first, naming the app and what it asks for.
    url, _ = authorize_url(system, "outside-app", callback)
    page.goto(url)
    expect(
        page.get_by_role("heading", name="Allow outside-app to use your account?")
    ).to_be_visible()
    expect(page.locator(".scopes")).to_contain_text("Read your notes")
    page.get_by_role("button", name="Allow", exact=True).click()
    expect(page).to_have_url(re.compile(f"^{re.escape(callback)}\\?"))
    arrived.append(page.url)
    assert "code" in parse_qs(urlsplit(arrived[-1]).query)
    # Remembered: the next time, no page.
    page.goto(authorize_url(system, "outside-app", callback)[0])
    expect(page).to_have_url(re.compile(f"^{re.escape(callback)}\\?"))
    assert "code" in parse_qs(urlsplit(page.url).query)


def test_a_wrong_password_and_a_lockout_say_what_happened(
    app: NotesPage, system: PageSystem
) -> None:
    page = app.page
    page.set_viewport_size(WIDE)
    system.register("frank")
    app.open()
    hosted = app.start_log_in()
    alert = hosted.alert()
    wrong = "That username or password is wrong. Check them and try again."

    def attempt(username: str, password: str) -> int:
        with page.expect_response(lambda r: r.request.method == "POST") as answer:
            hosted.sign_in(username, password)
        return int(answer.value.status)

    # An unknown user and a wrong password read the same.
    assert attempt("nobody-at-all", "some long password") == 400
    expect(alert).to_have_text(wrong)
    for n in range(3):
        assert attempt("frank", f"wrong password {n}") == 400
        expect(alert).to_have_text(wrong)
        expect(page.get_by_label("Password", exact=True)).to_be_empty()
        expect(page.get_by_label("Password", exact=True)).to_be_focused()
        expect(page.get_by_label("Username or email")).to_have_value("frank")

    # Locked out, with the time left from Retry-After (the window is 15 minutes).
    assert attempt("frank", "wrong password 4") == 429
    expect(alert).to_have_text(
        "Too many failed attempts, so signing in as “frank” is paused for now. "
        "Try again in 15 minutes."
    )
    screenshot(page, "lockout")
    # Even the right password waits.
    assert attempt("frank", PASSWORD) == 429
    expect(alert).to_contain_text("Try again in 15 minutes.")


def test_an_unreachable_server_is_named_as_such(
    app: NotesPage, system: PageSystem, console: Console
) -> None:
    console.allow(pattern=r"net::ERR_FAILED")
    page = app.page
    system.register("gina")

    # On load: no signed-out view (the session might exist), but a way to try again.
    page.route(system.token_endpoint, lambda route: route.abort())
    app.open()
    expect(page.locator("#splash-error")).to_contain_text("we can't reach the server")
    expect(page.locator("#auth-view")).to_be_hidden()
    retry = page.get_by_role("button", name="Try again")
    expect(retry).to_be_focused()
    page.unroute(system.token_endpoint)
    retry.click()
    app.expect_login_form()

    # On the way back from the sign-in: the code can't be exchanged.
    page.route(system.token_endpoint, lambda route: route.abort())
    app.log_in("gina", PASSWORD)
    expect(page.locator("#auth-error")).to_have_text(
        "Couldn't sign you in: we can't reach the server. Check your connection and try again."
    )
    page.unroute(system.token_endpoint)
    # The auth server remembers the sign-in: "Log in" comes straight back, no password form.
    page.get_by_role("button", name="Log in", exact=True).click()
    app.expect_notes()


def test_load_more_pages_through_the_notes(app: NotesPage, system: PageSystem) -> None:
    system.register("hank")
    token = system.api_token("hank")
    for n in range(1, 24):
        system.create_note(token, f"Note {n:02d}", "written by the API")
    app.open()
    app.log_in("hank", PASSWORD)
    app.expect_notes()
    expect(app.notes()).to_have_count(20)
    expect(app.notes().first.locator(".note-title")).to_have_text("Note 23")
    more = app.page.get_by_role("button", name="Load more")
    more.click()
    expect(app.notes()).to_have_count(23)
    expect(app.notes().last.locator(".note-title")).to_have_text("Note 01")
    expect(more).to_be_hidden()


def problem_503(route: Any) -> None:
    route.fulfill(
        status=503,
        headers={"Retry-After": "5"},
        content_type="application/problem+json",
        body='{"title":"Service Unavailable","status":503}',
    )


def test_failed_changes_roll_back_and_say_why(
    app: NotesPage, system: PageSystem, console: Console
) -> None:
    console.allow(statuses=(503,), pattern=r"net::ERR_FAILED")
    page = app.page
    system.register("ivan")
    system.create_note(system.api_token("ivan"), "Stable", "unchanged")
    app.open()
    app.log_in("ivan", PASSWORD)
    app.expect_notes()
    note = app.note("Stable")
    notes_url = f"{system.resource.url}/notes"

    # An edit the server refuses: the note shows what the server has, the editor keeps the words.
    def refuse_changes(route: Any) -> None:
        if route.request.method in {"PATCH", "DELETE"}:
            problem_503(route)
        else:
            route.continue_()

    page.route(f"{notes_url}/*", refuse_changes)
    note.get_by_role("button", name="Edit “Stable”").click()
    note.get_by_label("Note", exact=True).fill("changed")
    note.get_by_role("button", name="Save").click()
    expect(note.locator(".edit-error")).to_have_text(
        "Couldn't save your changes: the service is briefly unavailable. "
        "Try again in 5 seconds. The note is unchanged."
    )
    expect(note.get_by_label("Note", exact=True)).to_have_value("changed")
    note.get_by_role("button", name="Cancel").click()
    expect(note.locator(".note-body")).to_have_text("unchanged")

    # A delete the server refuses: the note comes back, with the reason.
    note.get_by_role("button", name="Delete “Stable”").click()
    note.get_by_role("button", name="Delete", exact=True).click()
    expect(note).to_have_count(0)
    page.locator(".toast").get_by_role("button", name="Dismiss").click()
    expect(app.note("Stable")).to_be_visible()
    expect(page.locator(".toast")).to_contain_text(
        "Couldn't delete “Stable”: the service is briefly unavailable. Try again in 5 seconds. "
        "The note is back."
    )

    # A note that can't be sent: it leaves the list, and its words go back into the composer.
    page.route(
        notes_url,
        lambda route: route.abort() if route.request.method == "POST" else route.continue_(),
    )
    page.locator("#note-title").fill("Lost?")
    page.locator("#note-body").fill("Not if the page can help it.")
    page.get_by_role("button", name="Add note").click()
    expect(page.locator("#note-form-error")).to_have_text(
        "Couldn't save your note: we can't reach the server. Check your connection and try again."
    )
    expect(app.note("Lost?")).to_have_count(0)
    expect(page.locator("#note-title")).to_have_value("Lost?")
    expect(page.locator("#note-body")).to_have_value("Not if the page can help it.")

    stored = system.notes(system.api_token("ivan"))
    assert [(n["title"], n["body"]) for n in stored] == [("Stable", "unchanged")]


def no_horizontal_scroll(page: Any) -> bool:
    return bool(
        page.evaluate(
            "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        )
    )


def test_readable_at_360_px_without_horizontal_scroll(
    new_context: Callable[..., Any], system: PageSystem
) -> None:
    context = new_context(viewport={"width": 360, "height": 760})
    app = NotesPage(context.new_page(), system.url).open()
    system.register("judy")
    app.expect_login_form()
    assert no_horizontal_scroll(app.page)
    hosted = app.start_log_in()
    assert no_horizontal_scroll(app.page)
    screenshot(app.page, "hosted-sign-in-360px", full_page=True)
    hosted.sign_in("judy", PASSWORD)
    app.expect_notes()
    app.add_note("Packing list", "Passport, charger, the good umbrella.")
    app.add_note(
        "A very long word",
        "Pneumonoultramicroscopicsilicovolcanoconiosis" * 3 + " and a URL: "
        "https://example.com/a/really/long/path/that/never/breaks/by/itself",
    )
    app.page.locator("#note-title").blur()
    assert no_horizontal_scroll(app.page)
    screenshot(app.page, "notes-360px", full_page=True)
    app.open_account()
    expect(app.page.locator("#sessions .session")).to_have_count(1)
    assert no_horizontal_scroll(app.page)
    screenshot(app.page, "account-360px", full_page=True)


def test_the_page_loads_only_its_own_files_under_a_strict_policy(
    app: NotesPage, system: PageSystem, console: Console
) -> None:
    page = app.page
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    response = page.goto(system.url)
    assert response is not None
    app.expect_login_form()

    # The policy: scripts and styles of this origin only, nothing inline, talk to the auth server.
    policy = response.headers["content-security-policy"]
    directives = {d.split()[0]: d.split()[1:] for d in policy.split(";") if d.strip()}
    assert directives["script-src"] == ["'self'"]
    assert directives["style-src"] == ["'self'"]
    assert system.auth.url in directives["connect-src"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert "unsafe" not in policy

    # The HTML has no inline script, style or handler; nothing comes from another origin.
    html = httpx.get(system.url, timeout=10).text
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert not re.search(r"\sstyle=|<style|\son[a-z]+=", html)
    origins = {f"{urlsplit(u).scheme}://{urlsplit(u).netloc}" for u in requested}
    assert origins <= {system.resource.url, system.auth.url}, origins

    # Opened as localhost, the page sends the browser to the auth server's host name: the two
    # are different sites, and the SameSite=Strict cookie would not come along.
    port = urlsplit(system.url).port
    moved = httpx.get(f"{system.url}?x=1", headers={"Host": f"localhost:{port}"}, timeout=10)
    assert moved.status_code == 307
    assert moved.headers["location"] == f"http://127.0.0.1:{port}/?x=1"

    # Password managers: the autocomplete tokens (the sign-in forms are the auth server's).
    autocomplete = {"#current-password": "current-password", "#new-password": "new-password"}
    for selector, token in autocomplete.items():
        expect(page.locator(selector)).to_have_attribute("autocomplete", token)

    # Every field has a label; every error slot is announced.
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll("input:not([hidden]), textarea")]
            .filter((field) => field.labels.length === 0 && !field.getAttribute("aria-label"))
            .map((field) => field.id || field.name)"""
    )
    assert unlabelled == []
    silent = page.evaluate(
        """() => [...document.querySelectorAll(".field-error, .form-error")]
            .filter((slot) => slot.getAttribute("role") !== "alert").map((slot) => slot.id)"""
    )
    assert silent == []

    # Keyboard: "Log in" has the focus and shows a focus ring; Tab reaches "Create an account".
    log_in = page.get_by_role("button", name="Log in", exact=True)
    expect(log_in).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Create an account")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    assert log_in.evaluate("(button) => getComputedStyle(button).outlineStyle") == "solid"

    # The watcher that fails every test on a CSP violation works: an inline style attribute is
    # refused and reported.
    with page.expect_console_message(lambda m: m.text.startswith("CSP violation")):
        page.evaluate("() => document.body.setAttribute('style', 'color: red')")
    reported = [p for p in console.problems if "CSP violation" in p or "Content Security" in p]
    assert reported
    console.problems[:] = [p for p in console.problems if p not in reported]
