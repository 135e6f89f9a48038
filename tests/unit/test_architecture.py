"""The intended import graph holds (docs/concepts/architecture.md): the contracts in pyproject.toml,
and no import hidden inside a function to dodge a cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("auth_server", "resource_server", "shared")
FIRST_PARTY = PACKAGES


def test_the_import_contracts_are_kept() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 kept, 0 broken" in result.stdout


def _function_local_imports(path: Path) -> list[str]:
    found: list[str] = []
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.Import):
                names = [alias.name for alias in inner.names]
            elif isinstance(inner, ast.ImportFrom):
                names = [inner.module or ""] if inner.level == 0 else ["<relative>"]
            else:
                continue
            found += [f"{path.relative_to(ROOT)}:{inner.lineno} {name}" for name in names]
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_no_first_party_import_is_hidden_inside_a_function(package: str) -> None:
    hidden = [
        entry
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations/versions" not in str(path)
        for entry in _function_local_imports(path)
        if entry.split()[-1].startswith(FIRST_PARTY) or entry.endswith("<relative>")
    ]
    assert hidden == []
