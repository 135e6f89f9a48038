"""shared/ is a library for third parties: its public surface is deliberate, and it depends on
neither service."""

from __future__ import annotations

import ast
from pathlib import Path

import shared

SHARED_DIR = Path(shared.__file__).parent


def test_the_public_surface_is_exactly_what_we_export() -> None:
    assert sorted(shared.__all__) == [
        "AccessTokenClaims",
        "AuthServerUnavailable",
        "BearerAuth",
        "BearerChallenge",
        "Denylist",
        "KeySource",
        "ProblemError",
        "RefreshRejected",
        "RemoteKeySet",
        "RevocationFeedClient",
        "StaticKeySet",
        "TokenError",
        "TokenPair",
        "TokenVerifier",
        "TransparentRefresher",
        "VerificationKey",
        "VerifiedTokenCache",
    ]
    for name in shared.__all__:
        assert getattr(shared, name) is not None


def test_shared_never_imports_either_service() -> None:
    for path in SHARED_DIR.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(("auth_server", "resource_server")), (
                    f"{path.name} imports {name}"
                )
