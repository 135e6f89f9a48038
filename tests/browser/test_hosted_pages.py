"""The auth server's hosted pages in Chromium: with JavaScript off, by keyboard alone, at 360 px
and 1440 px, under their strict policy, loading nothing from another origin."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD, Console, PageSystem, screenshot

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def system(system_factory: Callable[..., PageSystem]) -> PageSystem:
    system = system_factory()
    callback = f"{system.resource.url}/healthz"
    system.cli("clients", "create", "plain-app", "--first-party", "--redirect-uri", callback)
    system.cli("clients", "create", "their-app", "--redirect-uri", callback)
    return system


def authorize(system: PageSystem, client_id: str) -> str:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": f"{system.resource.url}/healthz",
            "scope": "openid notes:read",
            "state": "st",
            "code_challenge": challenge.rstrip(b"=").decode(),
            "code_challenge_method": "S256",
        }
    )
    return f"{system.auth.url}/authorize?{query}"


def no_horizontal_scroll(page: Any) -> bool:
    return bool(
        page.evaluate(
            "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        )
    )


def test_signing_up_and_in_works_with_javascript_off(
    new_context: Callable[..., Any], system: PageSystem, console: Console
) -> None:
    console.allow(statuses=(404,))  # /favicon.ico of the stand-in app page (/healthz)
    page = new_context(java_script_enabled=False).new_page()
    page.goto(authorize(system, "plain-app"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_role("link", name="Create an account").click()
    page.get_by_label("Username").fill("nojs")
    page.get_by_label("Email").fill("nojs@example.com")
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#password-error")).to_have_text(
        "The password must be at least 10 characters."
    )
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(re.compile(r"/healthz\?"))
    answer = parse_qs(urlsplit(page.url).query)
    assert answer["state"] == ["st"] and answer["iss"] == [system.auth.url] and answer["code"]

    # Signed out (the confirmation is a form too), then in again with the password.
    page.goto(f"{system.auth.url}/logout")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="You're signed out")).to_be_visible()
    page.goto(authorize(system, "plain-app"))
    page.get_by_label("Username or email").fill("nojs@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/healthz\?"))


def test_the_sign_in_page_by_keyboard_alone(
    new_context: Callable[..., Any], system: PageSystem, console: Console
) -> None:
    console.allow(statuses=(404,))  # /favicon.ico of the stand-in app page (/healthz)
    system.register("keys")
    page = new_context().new_page()
    page.goto(authorize(system, "plain-app"))
    username = page.get_by_label("Username or email")
    expect(username).to_be_focused()  # autofocus
    page.keyboard.type("keys")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password", exact=True)).to_be_focused()
    page.keyboard.type("not the password")
    page.keyboard.press("Tab")
    button = page.get_by_role("button", name="Sign in")
    expect(button).to_be_focused()
    assert button.evaluate("(b) => getComputedStyle(b).outlineStyle") == "solid"
    page.keyboard.press("Enter")
    alert = page.get_by_role("alert").filter(has_text="wrong")
    expect(alert).to_have_text("That username or password is wrong. Check them and try again.")
    expect(page.get_by_label("Password", exact=True)).to_be_focused()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/healthz\?"))

    # Consent for a third party, by keyboard too: Tab reaches "Allow" and "Don't allow".
    page.goto(authorize(system, "their-app"))
    expect(page.get_by_role("heading", name="Allow their-app to use your account?")).to_be_visible()
    page.keyboard.press("Tab")  # the skip link
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Allow", exact=True)).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Don't allow")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/healthz\?.*error=access_denied"))


@pytest.mark.parametrize("width", [360, 1440])
def test_every_hosted_page_reads_well_and_loads_only_its_own_files(
    new_context: Callable[..., Any], system: PageSystem, width: int, console: Console
) -> None:
    console.allow(statuses=(404,))  # /favicon.ico of the stand-in app page (/healthz)
    name = f"pages{width}"
    system.register(name)
    page = new_context(viewport={"width": width, "height": 800}).new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    policies: list[tuple[str, str]] = []

    def on_response(response: Any) -> None:
        if (
            response.request.resource_type == "document"
            and response.url.startswith(system.auth.url)
            and response.status == 200
        ):
            policies.append((response.url, response.headers.get("content-security-policy", "")))

    page.on("response", on_response)

    def check(shot: str) -> None:
        assert no_horizontal_scroll(page), page.url
        unlabelled = page.evaluate(
            """() => [...document.querySelectorAll("input:not([type=hidden]), button")]
                .filter((c) => c.tagName === "INPUT" ? c.labels.length === 0 : !c.textContent.trim())
                .map((c) => c.outerHTML)"""
        )
        assert unlabelled == [], unlabelled
        html = page.content()
        assert not re.search(r"<script(?![^>]*\bsrc=)", html)
        assert not re.search(r"\sstyle=|<style|\son[a-z]+=", html)
        screenshot(page, f"{shot}-{width}px", full_page=True)

    page.goto(f"{system.auth.url}/login")
    check("hosted-sign-in")
    page.goto(f"{system.auth.url}/signup")
    check("hosted-sign-up")
    page.goto(f"{system.auth.url}/login")
    page.get_by_label("Username or email").fill(name)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="You're signed in")).to_be_visible()
    check("hosted-signed-in")
    page.goto(authorize(system, "their-app"))
    expect(page.get_by_role("button", name="Allow", exact=True)).to_be_visible()
    check("hosted-consent")
    page.goto(f"{system.auth.url}/logout?client_id=their-app")
    check("hosted-sign-out")

    origins = {f"{urlsplit(u).scheme}://{urlsplit(u).netloc}" for u in requested}
    assert origins <= {system.auth.url, system.resource.url}, origins
    assert len(policies) >= 5
    for url, policy in policies:
        directives = {d.split()[0]: d.split()[1:] for d in policy.split(";") if d.strip()}
        assert directives["default-src"] == ["'none'"], url
        assert directives["script-src"] == ["'self'"] and directives["style-src"] == ["'self'"]
        assert directives["frame-ancestors"] == ["'none'"]
        assert "unsafe" not in policy
