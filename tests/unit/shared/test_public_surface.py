"""shared/ is a library for third parties: its public surface is deliberate, its core pulls in no
web framework and no ORM, and it depends on neither service."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import shared
import shared.fastapi

SHARED_DIR = Path(shared.__file__).parent
ROOT = SHARED_DIR.parent
CORE_MODULES = [
    "shared.claims",
    "shared.denylist",
    "shared.errors",
    "shared.forwarding",
    "shared.jwks",
    "shared.keys",
    "shared.metrics",
    "shared.refresh",
    "shared.revocation_feed",
    "shared.text",
    "shared.token_cache",
    "shared.verification",
]
HEAVY = ["fastapi", "starlette", "sqlalchemy", "pydantic", "prometheus_client", "alembic"]


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _fresh_interpreter(code: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded: dict[str, object] = json.loads(result.stdout)
    return loaded


def test_the_public_surface_is_exactly_what_we_export() -> None:
    assert shared.__all__ == [
        "AccessTokenClaims",
        "AuthServerUnavailable",
        "Denylist",
        "KeySource",
        "Metrics",
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
    assert sorted(shared._EXPORTS) == shared.__all__
    for name in shared.__all__:
        value = getattr(shared, name)
        assert value.__name__ == name and value.__module__ == shared._EXPORTS[name]


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        _ = shared.NotAThing  # type: ignore[attr-defined]
    except AttributeError as exc:
        assert "NotAThing" in str(exc)
    else:  # pragma: no cover - the assertion above is the test
        raise AssertionError("shared.NotAThing resolved")


def test_the_fastapi_glue_exports_one_installer_and_the_dependency() -> None:
    assert sorted(shared.fastapi.__all__) == sorted(
        [
            "NEW_TOKEN_HEADERS",
            "PROBLEM_JSON",
            "REFRESH_TOKEN_HEADER",
            "BearerAuth",
            "BearerChallenge",
            "RefreshUnavailable",
            "TokenHeadersMiddleware",
            "install_bearer_handlers",
            "problem_response",
            "refreshed_token_headers",
            "set_token_url",
        ]
    )


def test_import_shared_loads_nothing_but_itself() -> None:
    loaded = _fresh_interpreter(
        "import sys, json; import shared; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('shared', 'jwt', 'httpx', 'cryptography', *" + repr(HEAVY) + "))))"
    )
    assert loaded == ["shared"]


def test_the_core_imports_no_web_framework_and_no_orm() -> None:
    loaded = _fresh_interpreter(
        "import sys, json, importlib\n"
        f"for name in {CORE_MODULES!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    assert not set(HEAVY) & set(loaded), sorted(set(HEAVY) & set(loaded))
    assert "redis" not in loaded  # only imported once a Redis URL is configured
    assert {"jwt", "httpx", "cryptography"} <= set(loaded)
    assert not {"auth_server", "resource_server"} & set(loaded)


def test_the_core_never_imports_the_glue_or_the_service_kit() -> None:
    for module in CORE_MODULES:
        path = ROOT / (module.replace(".", "/") + ".py")
        for name in _imports(path):
            assert not name.startswith(
                ("fastapi", "starlette", "shared.fastapi", "shared.service")
            ), f"{module} imports {name}"


def test_shared_never_imports_either_service() -> None:
    for path in SHARED_DIR.rglob("*.py"):
        for name in _imports(path):
            assert not name.startswith(("auth_server", "resource_server")), (
                f"{path.relative_to(ROOT)} imports {name}"
            )
