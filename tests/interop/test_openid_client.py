"""npm's openid-client v6, an independent relying party, against notes-auth: discovery, code +
PKCE, the id_token with its nonce, userinfo, refresh and end-session (OIDC Core §3.1,
Discovery 1.0, RP-Initiated Logout 1.0)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.interop.conftest import Provider, browser

REDIRECT = "http://127.0.0.1:9/rp/callback"  # never opened: the test reads the code from it
POST_LOGOUT = "http://127.0.0.1:9/rp/"


def test_openid_client_signs_in_reads_userinfo_refreshes_and_logs_out(
    provider: Provider, openid_client_dir: Path
) -> None:
    # A third-party relying party: the person is asked to allow it.
    provider.cli(
        "clients", "create", "node-rp",
        "--redirect-uri", REDIRECT,
        "--post-logout-redirect-uri", POST_LOGOUT,
        "--scope", "openid profile email notes:read",
    )  # fmt: skip
    node = shutil.which("node")
    assert node is not None
    with (
        subprocess.Popen(
            [node, "client.mjs", provider.issuer, "node-rp", REDIRECT, POST_LOGOUT],
            cwd=openid_client_dir,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as rp,
        browser() as person,
    ):
        assert rp.stdin is not None and rp.stdout is not None
        first = json.loads(rp.stdout.readline())
        assert "authorization_url" in first, first
        url = first["authorization_url"]
        query = parse_qs(urlsplit(url).query)
        assert query["code_challenge_method"] == ["S256"] and query["nonce"]
        back = provider.browse(person, url, REDIRECT)
        rp.stdin.write(back + "\n")
        rp.stdin.flush()
        result = json.loads(rp.stdout.readline())
        rp.wait(timeout=30)
        assert "error" not in result, result

        claims = result["claims"]
        assert claims["iss"] == provider.issuer and claims["aud"] == "node-rp"
        assert claims["amr"] == ["pwd"] and claims["acr"] == "urn:notes-auth:acr:pwd"
        assert claims["nonce"] == query["nonce"][0]
        userinfo = result["userinfo"]
        assert userinfo["sub"] == claims["sub"]
        assert userinfo["preferred_username"] == provider.username
        assert userinfo["email"] == "interop@example.com"
        refreshed = result["refreshed_claims"]
        assert "nonce" not in refreshed
        assert {k: refreshed[k] for k in ("auth_time", "amr", "acr", "sub", "sid")} == {
            k: claims[k] for k in ("auth_time", "amr", "acr", "sub", "sid")
        }

        # End session: the browser follows the RP's logout URL and lands back at the RP.
        bearer = {"Authorization": f"Bearer {result['refreshed_access_token']}"}
        assert httpx.get(f"{provider.issuer}/userinfo", headers=bearer).status_code == 200
        ended = person.get(result["end_session_url"])
        assert ended.status_code == 302
        assert ended.headers["location"] == f"{POST_LOGOUT}?state=end-state"
        assert httpx.get(f"{provider.issuer}/userinfo", headers=bearer).status_code == 401
