"""Every curl command in the documentation (docs/**/*.md and the README) runs against real
servers on loopback, with the real curl, and answers the status the page says.

The commands are read from the pages' fenced `sh` blocks (continuation lines joined). A trailing
comment that starts with a status (`# 201 + Location`) is what the command must answer; without
one, any 2xx. The pages write `$A` and `$R` for the two services and `$TOKEN`, `$REFRESH`,
`$NOTE_ID`... for what earlier answers gave the reader; each command runs in a context of its own
that provides them: a fresh user (the pages' `alice`, renamed) logged in, with a session, a note,
a cookie jar for the page's client, an admin and confidential clients made with the documented
commands, and an expired access token from a system whose tokens live 5 seconds. Commands that
need what loopback can't give (the compose topology behind TLS) are listed in EXEMPT, with where
they do run."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.code_flow import code_flow
from tests.e2e.conftest import LiveSystemFactory
from tests.e2e.servers import LiveSystem

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PAGES = [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]
PASSWORD = "a long unusual passphrase"  # the pages' alice
ADMIN_PASSWORD = "a long admin passphrase"  # the pages' admin
PAGE_ORIGIN = "http://127.0.0.1:8001"  # the Origin the pages send for the web page's client

# Commands that can't run on loopback, and where they do run instead.
EXEMPT = {
    "https://notes.localhost/auth/readyz": "the compose topology behind TLS: the docker job of "
    ".github/workflows/ci.yml runs the same request against `docker compose up`",
}

VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}")


@dataclass(frozen=True)
class Example:
    where: str  # page:line
    command: str  # one logical line, its comment included

    @property
    def shell(self) -> str:
        return split_comment(self.command)[0]

    @property
    def comment(self) -> str:
        return split_comment(self.command)[1]

    @property
    def expected(self) -> int | None:
        match = re.match(r"(\d{3})\b", self.comment)
        return int(match.group(1)) if match else None

    @property
    def variables(self) -> set[str]:
        return {a or b for a, b in VARIABLE.findall(self.shell)}

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.shell)


def split_comment(command: str) -> tuple[str, str]:
    """The command and its trailing comment: the first ` #` outside quotes."""
    for match in re.finditer(r"\s#", command):
        head = command[: match.start()]
        try:
            shlex.split(head)
        except ValueError:  # inside quotes
            continue
        return head.strip(), command[match.end() :].strip()
    return command.strip(), ""


def curl_examples() -> list[Example]:
    examples: list[Example] = []
    for page in PAGES:
        where_page = page.relative_to(ROOT).as_posix()
        in_shell = in_block = False
        pending: list[str] = []
        start = 0
        for number, line in enumerate(page.read_text().splitlines(), start=1):
            fence = re.match(r"^\s*```(\w*)", line)
            if fence:
                in_block = not in_block
                in_shell = in_block and fence.group(1) in {"sh", "bash", "shell"}
                pending = []
                continue
            if not in_shell:
                continue
            if not pending:
                start = number
            pending.append(line.rstrip().removesuffix("\\").strip())
            if line.rstrip().endswith("\\"):
                continue
            logical = " ".join(part for part in pending if part)
            pending = []
            if logical.startswith("curl "):
                examples.append(Example(f"{where_page}:{start}", logical))
    return examples


EXAMPLES = curl_examples()


# --- The systems, and what the pages' commands assume exists --------------------------------


@dataclass
class Installation:
    system: LiveSystem
    client: tuple[str, str]  # `clients create reports ...`
    feed_client: tuple[str, str]  # a client with revocations:read


def create_client(system: LiveSystem, name: str, scope: str) -> tuple[str, str]:
    result = system.cli(
        "clients",
        "create",
        name,
        "--confidential",
        "--grant",
        "client_credentials",
        "--scope",
        scope,
    )
    assert result.returncode == 0, result.stderr
    return name, result.stdout.strip().splitlines()[-1]


def start_installation(factory: LiveSystemFactory, **auth: str) -> Installation:
    system = factory(
        auth={
            "AUTH_CORS_ORIGINS": PAGE_ORIGIN,
            "AUTH_REGISTRATION_IP_LIMIT": "10000",
            "AUTH_LOGIN_IP_LIMIT": "10000",
            **auth,
        },
        resource={"RESOURCE_LEEWAY": "0"} if auth else None,
    )
    created = system.cli(
        "users", "create", "admin", "--email", "admin@example.com", "--admin",
        stdin=f"{ADMIN_PASSWORD}\n",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    return Installation(
        system,
        create_client(system, "reports", "notes:read"),
        create_client(system, "notes-api-feed", "revocations:read"),
    )


@pytest.fixture(scope="module")
def installation(module_system_factory: LiveSystemFactory) -> Installation:
    return start_installation(module_system_factory)


@pytest.fixture(scope="module")
def short_lived(module_system_factory: LiveSystemFactory) -> Iterator[Installation]:
    """A second installation whose access tokens expire after 5 seconds (no leeway), for the
    commands that show what an expired token does. Not 1 second: the pair a transparent refresh
    brings back must outlive the request that relays it, on a loaded machine too."""
    yield start_installation(module_system_factory, AUTH_ACCESS_TOKEN_TTL="5")


@pytest.fixture(scope="module")
def curl() -> str:
    path = shutil.which("curl")
    if path is None:
        pytest.fail("curl is missing: the docs' curl examples can't be run (apt-get install curl)")
    return path


# --- One command's context -------------------------------------------------------------------

_counter = iter(range(1, 10**6))


def is_sign_up(example: Example) -> bool:
    return "$A/users" in example.argv and "POST" in example.argv


def token_for(
    http: httpx.Client, auth_url: str, username: str, password: str, **extra: str
) -> dict[str, str]:
    response = http.post(
        f"{auth_url}/token",
        data={"grant_type": "password", "client_id": "web", "username": username, "password": password}
        | extra,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    return dict(response.json())


def context_for(example: Example, installation: Installation, workdir: Path) -> dict[str, str]:
    """The variables the command uses, made fresh: nothing it does disturbs another command."""
    system = installation.system
    auth_url, resource_url = system.auth.url, system.resource.url
    username = f"alice-{os.getpid()}-{next(_counter)}"
    env = {"A": auth_url, "R": resource_url, "USERNAME": username}
    env["CLIENT_ID"], env["CLIENT_SECRET"] = installation.client
    env["FEED_CLIENT_ID"], env["FEED_SECRET"] = installation.feed_client
    if is_sign_up(example):
        return env
    with httpx.Client(timeout=30) as http:
        created = http.post(
            f"{auth_url}/users",
            json={"username": username, "email": f"{username}@example.com", "password": PASSWORD},
        )
        assert created.status_code == 201, created.text
        tokens = token_for(http, auth_url, username, PASSWORD)
        env["TOKEN"], env["REFRESH"] = tokens["access_token"], tokens["refresh_token"]
        env["USER_SUB"] = jwt.decode(env["TOKEN"], options={"verify_signature": False})["sub"]
        env["SESSION_ID"] = jwt.decode(env["TOKEN"], options={"verify_signature": False})["sid"]
        note = http.post(
            f"{resource_url}/notes",
            json={"title": "a note", "body": "to read, rename and delete"},
            headers={"Authorization": f"Bearer {env['TOKEN']}"},
        )
        assert note.status_code == 201, note.text
        env["NOTE_ID"] = str(note.json()["id"])
        if "ADMIN_TOKEN" in example.variables:
            admin = token_for(
                http, auth_url, "admin", ADMIN_PASSWORD, scope="notes:read notes:write admin"
            )
            env["ADMIN_TOKEN"] = admin["access_token"]
        if "EXPIRED_TOKEN" in example.variables:
            env["EXPIRED_TOKEN"] = env["TOKEN"]
            wait_until_refused(http, resource_url, env["TOKEN"])
    if "-b" in example.argv:  # the page's client: a cookie jar from its sign-in (code + PKCE)
        with httpx.Client(timeout=30) as browser:
            login = code_flow(
                browser,
                auth_url,
                username=username,
                password=PASSWORD,
                client_id="web-page",
                redirect_uri=f"{PAGE_ORIGIN}/callback",
                token_headers={"Origin": PAGE_ORIGIN},
            )
            assert "access_token" in login.json(), login.text
            write_curl_jar(workdir / "jar", browser.cookies.jar, "notes_auth_refresh")
    return env


def write_curl_jar(path: Path, cookies: Any, name: str) -> None:
    """The cookies called `name`, in the Netscape format curl's `-b` reads (HttpOnly ones
    marked as curl marks them)."""
    lines = ["# Netscape HTTP Cookie File"]
    for cookie in cookies:
        if cookie.name != name:
            continue
        domain = ("#HttpOnly_" if cookie.has_nonstandard_attr("HttpOnly") else "") + cookie.domain
        secure = "TRUE" if cookie.secure else "FALSE"
        lines.append(
            f"{domain}\tFALSE\t{cookie.path}\t{secure}\t{cookie.expires or 0}\t{name}\t{cookie.value}"
        )
    path.write_text("\n".join(lines) + "\n")


def wait_until_refused(http: httpx.Client, resource_url: str, token: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        response = http.get(f"{resource_url}/me", headers={"Authorization": f"Bearer {token}"})
        if response.status_code == 401:
            return
        time.sleep(0.2)
    raise AssertionError("the short-lived access token never expired")


def expand(argument: str, env: dict[str, str], example: Example) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in env:
            raise AssertionError(f"{example.where} uses ${name}, which this test doesn't provide")
        return env[name]

    # The pages' user is alice; each command gets a user of its own.
    return VARIABLE.sub(value, argument).replace("alice", env["USERNAME"])


# --- The tests -------------------------------------------------------------------------------


def test_the_docs_have_curl_examples_to_run() -> None:
    pages = {example.where.split(":")[0] for example in EXAMPLES}
    assert len(EXAMPLES) >= 40
    assert {"README.md", "docs/guides/curl.md", "docs/getting-started/index.md"} <= pages
    for command in EXEMPT:
        assert any(command in example.command for example in EXAMPLES), f"stale: {command}"


@pytest.mark.parametrize("example", EXAMPLES, ids=[example.where for example in EXAMPLES])
def test_every_curl_example_answers_as_documented(
    example: Example,
    curl: str,
    installation: Installation,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    exempt = next((why for command, why in EXEMPT.items() if command in example.command), None)
    if exempt:
        pytest.skip(f"not on loopback: {exempt}")
    if "EXPIRED_TOKEN" in example.variables:
        installation = request.getfixturevalue("short_lived")
    env = context_for(example, installation, tmp_path)
    argv = [expand(argument, env, example) for argument in example.argv[1:]]
    result = subprocess.run(
        [curl, *argv, "--max-time", "30", "-w", "\n%{http_code}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output, _, status_line = result.stdout.rpartition("\n")
    status = int(status_line) if status_line.isdigit() else 0
    shown = f"{example.where}: {example.command}\n-> {status}\n{output[-2000:]}{result.stderr}"
    if example.expected is not None:
        assert status == example.expected, shown
    else:
        assert 200 <= status < 300, shown
    if "New-Access-Token" in example.comment:
        assert re.search(r"(?im)^new-access-token: \S+", output), shown
