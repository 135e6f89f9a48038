"""Staying logged in, and being logged out, across tabs and browsers: an access token that
expires while the page is open, two tabs refreshing at once, logging out (or in) in one tab,
logging out everywhere from another browser, and a password change.

Access tokens live 2 seconds here and are checked with no leeway, so the page renews them
during the tests. The auth server's refresh grace window is off: two tabs that raced with one
refresh token would end their own session, so a race can't hide behind the grace window.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.sync_api import ViewportSize, expect

from tests.browser.conftest import PASSWORD, PageSystem, screenshot
from tests.browser.notes_page import (
    REFRESH_COOKIE,
    NotesPage,
    TokenTraffic,
    record_statuses,
    wait_until,
)

pytestmark = pytest.mark.timeout(90)

TTL = 2
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
WIDE: ViewportSize = {"width": 1440, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 800}
SESSION_ENDED = "Your session has ended"


@pytest.fixture(scope="module")
def system(system_factory: Callable[..., PageSystem]) -> PageSystem:
    return system_factory(
        auth={
            "AUTH_ACCESS_TOKEN_TTL": str(TTL),
            "AUTH_LEEWAY": "0",
            "AUTH_REFRESH_REUSE_GRACE": "0",
        },
        resource={"RESOURCE_LEEWAY": "0"},
    )


def wait_until_refused(system: PageSystem, token: str) -> None:
    """Until the resource server refuses `token` (expired or revoked): no fixed sleep."""

    def refused() -> bool:
        response = httpx.get(
            f"{system.resource.url}/me", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        return response.status_code == 401

    wait_until(refused, timeout=TTL + 10, what="the resource server to refuse the token")


def logged_in(
    new_context: Callable[..., Any], system: PageSystem, username: str, **options: Any
) -> tuple[NotesPage, TokenTraffic]:
    """A browser of its own, logged in as `username`, and its token traffic."""
    context = new_context(**options)
    traffic = TokenTraffic(system.token_endpoint).watch(context)
    app = NotesPage(context.new_page(), system.url).open()
    app.log_in(username, PASSWORD)
    app.expect_notes()
    return app, traffic


def test_an_access_token_that_expires_while_the_page_is_open_is_renewed_by_the_next_action(
    new_context: Callable[..., Any], system: PageSystem
) -> None:
    system.register("kate")
    app, traffic = logged_in(new_context, system, "kate")
    expired = traffic.issued()[-1]
    wait_until_refused(system, expired)
    before = traffic.refreshes()

    statuses = record_statuses(app.page, f"{system.resource.url}/notes")
    app.add_note("Written after the token expired", "The page renewed it on its own.")
    # The API said 401, the page refreshed once through its cookie, and sent the note again.
    assert statuses == [401, 201]
    assert traffic.refreshes() == before + 1
    assert traffic.issued()[-1] != expired
    expect(app.page.locator("html")).to_have_attribute("data-state", "signed-in")
    expect(app.page.locator("#note-form-error")).to_be_empty()


def test_two_tabs_refreshing_at_once_share_one_refresh_and_stay_logged_in(
    context: Any, system: PageSystem
) -> None:
    system.register("liam")
    traffic = TokenTraffic(system.token_endpoint).watch(context)
    first = NotesPage(context.new_page(), system.url).open()
    first.log_in("liam", PASSWORD)
    first.expect_notes()
    second = NotesPage(context.new_page(), system.url).open()
    second.expect_notes()  # restored through a refresh; the first tab took the new token too
    wait_until_refused(system, traffic.issued()[-1])
    start = len(traffic.events)

    # Hold every refresh back at the network until both tabs have found their token expired.
    held: list[Any] = []

    def hold_refreshes(route: Any) -> None:
        if "grant_type=refresh_token" in (route.request.post_data or ""):
            held.append(route)
        else:
            route.continue_()

    context.route(system.token_endpoint, hold_refreshes)
    notes_url = f"{system.resource.url}/notes"
    statuses: dict[str, list[int]] = {}
    for name, tab in (("first", first), ("second", second)):
        statuses[name] = record_statuses(tab.page, notes_url)
        tab.page.locator("#note-title").fill(f"From the {name} tab")

    def expired(response: Any) -> bool:
        return bool(response.url == notes_url and response.status == 401)

    submit = "() => document.getElementById('note-form').requestSubmit()"
    with first.page.expect_response(expired), second.page.expect_response(expired):
        first.page.evaluate(submit)
        second.page.evaluate(submit)
    # Both tabs hold an expired token, and one refresh is on its way (held here). The other tab
    # waits for its result instead of sending the same cookie again.
    deadline = time.monotonic() + 10
    while not held and time.monotonic() < deadline:
        first.page.wait_for_timeout(20)  # lets Playwright deliver the route
    first.page.wait_for_timeout(300)  # room for a second refresh, if the page were to send one
    assert len(held) == 1, f"{len(held)} refreshes were sent at once"
    held[0].continue_()
    context.unroute(system.token_endpoint)

    for name, tab in (("first", first), ("second", second)):
        expect(tab.note(f"From the {name} tab")).to_be_visible()
        tab.wait_saved()
        expect(tab.page.locator("#note-form-error")).to_be_empty()
        expect(tab.page.locator("html")).to_have_attribute("data-state", "signed-in")
    assert statuses == {"first": [401, 201], "second": [401, 201]}, statuses
    events = traffic.events[start:]
    refreshes = [event for event in events if event == ("start", "refresh_token")]
    assert len(refreshes) == 1, events  # one refresh for both tabs
    assert not TokenTraffic(system.token_endpoint, events=events).overlapped()

    # The session survived: a reload restores it through the (rotated) cookie.
    second.page.reload()
    second.expect_notes()
    expect(second.note("From the first tab")).to_be_visible()


def test_logging_out_or_in_in_one_tab_does_the_same_in_the_others(
    context: Any, system: PageSystem
) -> None:
    system.register("olga")
    one = NotesPage(context.new_page(), system.url).open()
    one.log_in("olga", PASSWORD)
    one.expect_notes()
    two = NotesPage(context.new_page(), system.url).open()
    two.expect_notes()

    one.log_out()
    two.expect_login_form()
    expect(two.notice()).to_have_text("You logged out in another tab.")

    two.log_in("olga", PASSWORD)
    two.expect_notes()
    one.expect_notes()  # the other tab picked up the new session


def test_log_out_everywhere_in_one_browser_ends_the_session_in_another(
    new_context: Callable[..., Any], system: PageSystem
) -> None:
    system.register("mia")
    phone, phone_traffic = logged_in(
        new_context, system, "mia", user_agent=IPHONE, viewport=PHONE, is_mobile=True
    )
    laptop, _ = logged_in(new_context, system, "mia", viewport=WIDE)
    laptop.add_note("Plan the weekend", "Market on Saturday morning.")

    laptop.open_account()
    sessions = laptop.page.locator("#sessions .session")
    expect(sessions).to_have_count(2)
    expect(sessions.first).to_contain_text("Headless Chrome on Linux")
    expect(sessions.first.locator(".this-device")).to_be_visible()
    expect(sessions.nth(1)).to_contain_text("Safari on iOS")
    expect(sessions.nth(1).locator(".this-device")).to_be_hidden()
    laptop.page.locator("#account-title").focus()
    screenshot(laptop.page, "account")

    laptop.page.get_by_role("button", name="Log out everywhere").click()
    confirm = laptop.page.locator("#everywhere-confirm")
    expect(confirm).to_contain_text("this one included")
    confirm.get_by_role("button", name="Log out everywhere").click()
    laptop.expect_login_form()
    expect(laptop.notice()).to_have_text(
        "You logged out everywhere. Every device, this one included, has to log in again."
    )

    # The phone learns as soon as its tab is looked at again, and says so.
    wait_until_refused(system, phone_traffic.issued()[-1])
    phone.page.evaluate("() => document.dispatchEvent(new Event('visibilitychange'))")
    phone.expect_login_form()
    expect(phone.notice()).to_contain_text(SESSION_ENDED)
    expect(phone.notice()).to_have_attribute("role", "alert")
    screenshot(phone.page, "session-ended-phone")
    assert [c for c in phone.page.context.cookies() if c["name"] == REFRESH_COOKIE] == []


def test_changing_the_password_ends_the_other_sessions_and_says_so(
    new_context: Callable[..., Any], system: PageSystem
) -> None:
    system.register("noah")
    new_password = "a brand new passphrase 7"
    here, _ = logged_in(new_context, system, "noah", viewport=WIDE)
    elsewhere, elsewhere_traffic = logged_in(new_context, system, "noah")

    here.open_account()
    expect(here.page.locator("#sessions .session")).to_have_count(2)
    form = here.page.locator("#password-form")
    change = form.get_by_role("button", name="Change password")

    form.get_by_label("Current password").fill("not my password at all")
    form.get_by_label("New password").fill(new_password)
    change.click()
    expect(here.page.locator("#current-password-error")).to_have_text(
        "That's not your current password."
    )

    form.get_by_label("Current password").fill(PASSWORD)
    form.get_by_label("New password").fill("short")
    change.click()
    expect(here.page.locator("#new-password-error")).to_have_text(
        "The password must be at least 10 characters."
    )
    expect(here.page.locator("#current-password-error")).to_be_empty()

    form.get_by_label("New password").fill(new_password)
    change.click()
    expect(here.page.locator("#password-done")).to_have_text(
        "Your password was changed. Your 1 other session was logged out. "
        "This device stays logged in."
    )
    expect(here.page.locator("#sessions .session")).to_have_count(1)
    here.page.locator("#account-title").focus()
    screenshot(here.page, "password-changed")

    # The other browser is out, and the old password no longer works there.
    wait_until_refused(system, elsewhere_traffic.issued()[-1])
    elsewhere.open_account()
    elsewhere.expect_login_form()
    expect(elsewhere.notice()).to_contain_text(SESSION_ENDED)
    elsewhere.log_in("noah", PASSWORD)
    expect(elsewhere.page.locator("#form-error")).to_contain_text("wrong")
    elsewhere.log_in("noah", new_password)
    # Back where it was going: the account.
    expect(elsewhere.page.locator("#account-view")).to_be_visible()
    expect(elsewhere.page.locator("#sessions .session")).to_have_count(2)

    # This browser kept its session.
    here.open_notes()
    here.add_note("Still logged in here")
