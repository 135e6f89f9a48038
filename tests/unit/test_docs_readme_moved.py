"""Nothing the README said before the documentation site existed is lost (issue 18): each of its
sections has a home in docs/, and a sentence of each is still there, word for word.

The checklist is frozen: it is the README's headings as they were at fef25ac, each with the page
that took it in, the heading it has there, and a passage of the old text. When a page is
reorganised, move the entry with its section; don't delete it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

# old README heading -> (page under docs/, its heading there, a passage of the old section)
MOVED: dict[str, tuple[str, str, str]] = {
    "notes-auth": (
        "index.md",
        "notes-auth",
        "verifies every token locally against\n  cached public keys (no call to the auth server",
    ),
    "The two commands": (
        "getting-started/index.md",
        "The two commands",
        "make run    # installs into .venv, migrates SQLite under var/, starts both services",
    ),
    "Architecture": (
        "concepts/architecture.md",
        "Architecture",
        "Presenting a rotated\n  refresh token again is treated as theft and ends the session",
    ),
    "Code layout and the import graph": (
        "concepts/architecture.md",
        "Code layout and the import graph",
        "Each request is one unit of work: the `DbSession` dependency",
    ),
    "The web page": (
        "getting-started/web-page.md",
        "The web page",
        "**Across tabs**: one session for every tab of the browser.",
    ),
    "Using it with curl": (
        "guides/curl.md",
        "Use the API with curl",
        'curl -s -X POST $A/introspect -u "$CLIENT_ID:$CLIENT_SECRET" -d token=$TOKEN',
    ),
    "Command line": (
        "reference/cli.md",
        "Command line",
        "Every command exits 0 on success, 2 on bad arguments and 1 on failure",
    ),
    "Verifying our tokens in a third-party API": (
        "guides/protect-your-api.md",
        "Protect your API",
        'algorithms=["RS256"],  # never take the algorithm from the token',
    ),
    "Security model": (
        "security/index.md",
        "Security model",
        "**The exception: sign-up tells whether a name is taken.**",
    ),
    "What is defended, and how": (
        "security/index.md",
        "What is defended, and how",
        "| stolen password database | Argon2id (pwdlib: 3 passes, 64 MiB, 4 lanes)",
    ),
    "What stays the operator's job": (
        "security/index.md",
        "What stays the operator's job",
        "- **Clocks** in sync (NTP): token times are checked with a leeway of at most 60 s.",
    ),
    "Refresh tokens, rotation and the grace window": (
        "security/index.md",
        "Refresh tokens, rotation and the grace window",
        '"The same party" means the same client, the same client address and the same `User-Agent`',
    ),
    "Revocation and keys fail closed": (
        "security/index.md",
        "Revocation and keys fail closed",
        "Retired signing keys are remembered forever.",
    ),
    "Tokens in the browser": (
        "security/tokens-in-the-browser.md",
        "Tokens in the browser",
        "**The alternative we did not take: a backend-for-frontend.**",
    ),
    "The choice": (
        "security/tokens-in-the-browser.md",
        "The choice",
        "The page is a public client of its own, `web-page`.",
    ),
    "What a CSRF attempt against the cookie meets": (
        "security/tokens-in-the-browser.md",
        "What a CSRF attempt against the cookie meets",
        "1. **`SameSite=Strict`**: the browser does not attach the cookie",
    ),
    "Tabs: one refresh at a time": (
        "security/tokens-in-the-browser.md",
        "Tabs: one refresh at a time",
        "Every refresh runs under one Web Lock (`notes-auth:refresh`).",
    ),
    "Notes for operators": (
        "security/tokens-in-the-browser.md",
        "Notes for operators",
        "`localhost` and `127.0.0.1` are\n  different sites to a browser",
    ),
    "Performance": (
        "guides/tune-and-benchmark.md",
        "Tune and benchmark",
        "| **our resource server, `GET /me`** (RS256 token verified locally) |",
    ),
    "Deploying": (
        "guides/deploy.md",
        "Deploy",
        "When one process is not enough, both services run as stateless replicas behind a proxy.",
    ),
    "Topology": ("guides/deploy.md", "Topology", "browsers, curl, API clients: one HTTPS origin"),
    "Scaling guide": (
        "guides/deploy.md",
        "Scaling guide",
        "Each resource server process opens up to 20 connections (pool 10 + overflow 10)",
    ),
    "With Docker Compose": (
        "guides/deploy.md",
        "With Docker Compose",
        "openssl rand -base64 48  > var/secrets/key_encryption_key",
    ),
    "On Kubernetes": (
        "guides/deploy.md",
        "On Kubernetes",
        "Before each later rollout, run the migration Job again (delete and re-apply it).",
    ),
    "The production server": (
        "guides/deploy.md",
        "The production server",
        "compose allows 30 s (`stop_grace_period`), Kubernetes 45 s",
    ),
    "Proof on this machine: `make cluster`": (
        "guides/cluster.md",
        "Proof on one machine: `make cluster`",
        "- **Invariants, checked in the databases at the end**",
    ),
    "Benchmark: 1 and 2 replicas": (
        "guides/cluster.md",
        "Benchmark: 1 and 2 replicas",
        "| `GET /me` (bearer token verified locally) | 9,612 (3.2 / 14.6) |",
    ),
    "Settings": (
        "reference/settings.md",
        "Settings",
        "Environment variables, also read from a `.env` file in the working directory.",
    ),
}

# Parts of the old README that had no heading of their own.
UNHEADED: dict[str, tuple[str, str]] = {
    "the failure table (What happens when…)": (
        "guides/what-happens-when.md",
        "the first publish after the restart is not lost",
    ),
    "the error formats paragraph": (
        "reference/index.md",
        "Bad input is\nalways a 4xx that says what was wrong; a 500 is a bug.",
    ),
    "the other make targets": (
        "getting-started/develop.md",
        "| `make profile TARGET=me\\|notes\\|healthz\\|refresh\\|bare` |",
    ),
    "the console output of make run": (
        "getting-started/index.md",
        "A busy port is named before\nanything starts",
    ),
}


def headings(markdown: str) -> set[str]:
    """The ATX headings of a page, outside code blocks, without `{#id}` attributes."""
    found: set[str] = set()
    fenced = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        match = re.match(r"^#{1,6} (.+?)(?: \{#[\w-]+\})?$", line)
        if match and not fenced:
            found.add(match.group(1).strip())
    return found


@pytest.mark.parametrize("old_heading", list(MOVED))
def test_each_readme_section_has_a_home_in_the_docs(old_heading: str) -> None:
    page, heading, passage = MOVED[old_heading]
    text = (DOCS / page).read_text()
    assert heading in headings(text), f"{page} has no heading {heading!r}"
    assert passage in text, f"{page} lost this part of the README's {old_heading!r}: {passage!r}"


@pytest.mark.parametrize("part", list(UNHEADED))
def test_each_unheaded_part_has_a_home(part: str) -> None:
    page, passage = UNHEADED[part]
    assert passage in (DOCS / page).read_text(), f"{page} lost {part}"


def test_every_docs_page_is_in_the_navigation() -> None:
    config = (ROOT / "mkdocs.yml").read_text()
    for page in sorted(DOCS.rglob("*.md")):
        relative = page.relative_to(DOCS).as_posix()
        assert relative in config, f"{relative} is not in mkdocs.yml's nav"


def test_the_readme_is_a_newcomers_page() -> None:
    readme = (ROOT / "README.md").read_text()
    assert 150 <= len(readme.splitlines()) <= 250
    for link in (
        "docs/guides/protect-your-api.md",
        "docs/guides/deploy.md",
        "docs/guides/operate.md#signing-keys",
        "docs/guides/what-happens-when.md#redis-is-down",
        "docs/learning-path.md",
        "docs/screenshots/docs-site.png",
    ):
        assert f"]({link})" in readme, link
    for target in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / target).is_file(), f"the README links to a missing {target}"
