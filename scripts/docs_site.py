"""MkDocs hooks (mkdocs.yml, `hooks:`): the pages of the documentation site that are generated
from the code when the site is built, so that they can't drift from it.

A page asks for generated content with a marker on a line of its own:

    <!-- generated: openapi auth-server -->   the service's OpenAPI document, rendered
    <!-- generated: settings auth-server -->  the settings table, from the settings class
    <!-- generated: cli auth-server -->       the command's reference, from its typer app
    <!-- generated: library shared -->        mkdocstrings directives for the module's __all__

and links to a file of the repository as `[text](src:auth_server/users/passwords.py)` (a folder
ends with `/`). Each such file gets a page of its own under `src/` showing it, and the link is
rewritten to point there: the site then reads offline, and a renamed module fails the strict
build instead of leaving a dead link.

Each service's OpenAPI document is also published as JSON next to its page
(`reference/openapi/<service>.json`), exported from `create_app(settings).openapi()`.
"""

from __future__ import annotations

import functools
import json
import posixpath
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parents[1]

MARKER = re.compile(r"^<!-- generated: (\w+) ([\w.-]+) -->$", re.MULTILINE)
SOURCE_LINK = re.compile(r"\]\(src:([^)#\s]+)\)")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})")

# What a `src:` link may point into: the code, its tests, and how it is built and deployed.
SOURCE_ROOTS = (
    "auth_server/",
    "resource_server/",
    "shared/",
    "examples/",
    "tests/",
    "bench/",
    "scripts/",
    "deploy/",
    ".ci/",
    ".github/",
    "docker-compose.yml",
    "pyproject.toml",
    "Makefile",
    "mkdocs.yml",
)
LANGUAGES = {
    ".py": "python",
    ".yml": "yaml",
    ".yaml": "yaml",
    ".toml": "toml",
    ".sh": "bash",
    ".conf": "nginx",
    ".sql": "sql",
    ".json": "json",
    ".js": "javascript",
    ".css": "css",
    ".html": "html",
    ".ini": "ini",
    ".md": "markdown",
}
SERVICES = ("auth-server", "resource-server")


class DocsError(PluginError):
    """A page asks for something the code doesn't have: the build fails with this message."""


# --- What the code says ----------------------------------------------------------------------


@functools.cache
def settings_class(service: str) -> Any:
    if service == "auth-server":
        from auth_server.settings import AuthSettings

        return AuthSettings
    if service == "resource-server":
        from resource_server.settings import ResourceSettings

        return ResourceSettings
    raise DocsError(f"no service {service!r} (one of {', '.join(SERVICES)})")


@functools.cache
def openapi_document(service: str) -> dict[str, Any]:
    """The service's OpenAPI document, as its running app serves it at /openapi.json."""
    settings = settings_class(service)(_env_file=None, environment="development")
    if service == "auth-server":
        from auth_server.main import create_app as create_auth_app

        return dict(create_auth_app(settings).openapi())
    from resource_server.main import create_app as create_resource_app

    return dict(create_resource_app(settings).openapi())


def environment_variable(service: str, name: str) -> str:
    prefix = settings_class(service).model_config.get("env_prefix", "")
    return f"{prefix}{name}".upper()


def shown_default(field: Any) -> str:
    """A field's default as an operator would write it in the environment."""
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    if "docs_default" in extra:
        return str(extra["docs_default"])
    if field.default_factory is not None:
        raise DocsError(
            "a setting with a computed default needs json_schema_extra={'docs_default': ...}"
        )
    value = field.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, list | tuple):
        return f"`{','.join(value)}`" if value else "empty"
    return f"`{value}`"


def settings_table(service: str) -> str:
    cls = settings_class(service)
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in cls.model_fields.items():
        if not field.description:
            raise DocsError(f"{environment_variable(service, name)} has no description")
        meaning = " ".join(field.description.split()).replace("|", "\\|")
        variable = environment_variable(service, name)
        rows.append(f"| `{variable}` | {shown_default(field)} | {meaning} |")
    return "\n".join(rows)


def cli_reference(command: str) -> str:
    import click
    import typer.cli
    import typer.main

    if command == "auth-server":
        from auth_server.cli import app
    elif command == "resource-server":
        from resource_server.cli import app
    else:
        raise DocsError(f"no command {command!r}")
    group = typer.main.get_command(app)
    text = typer.cli.get_docs_for_click(
        obj=group, ctx=click.Context(group, info_name=command), name=command, title=command
    )
    # Shell completion is typer's, not ours: leave it to `--help`.
    text = "\n".join(line for line in text.splitlines() if "-completion`" not in line)
    return demote_headings(text, 1)


def openapi_reference(service: str) -> str:
    from openapidocs.mk.v3 import OpenAPIV3DocumentationHandler

    text = OpenAPIV3DocumentationHandler(openapi_document(service), style="MARKDOWN").write()
    # The renderer opens with a comment and the document's title; the page has its own title.
    text = re.sub(r"^<!--.*?-->\s*", "", text, flags=re.DOTALL)
    text = re.sub(r"^# .*\n", "", text, count=1)
    return text


def library_reference(package: str) -> str:
    """mkdocstrings directives for every public name: `shared`'s `__all__` (each from the module
    that defines it) or a module's own `__all__`."""
    import importlib

    module = importlib.import_module(package)
    exports: dict[str, str] = getattr(module, "_EXPORTS", {})
    names: list[str] = list(module.__all__)
    blocks = []
    for name in names:
        where = exports.get(name, package)
        blocks.append(f"::: {where}.{name}\n    options:\n      heading_level: 3\n")
    return "\n".join(blocks)


GENERATORS: dict[str, Callable[[str], str]] = {
    "openapi": openapi_reference,
    "settings": settings_table,
    "cli": cli_reference,
    "library": library_reference,
}


# --- Markdown helpers ------------------------------------------------------------------------


def demote_headings(markdown: str, levels: int) -> str:
    """Every ATX heading `levels` deeper, code blocks left alone."""
    out: list[str] = []
    fence: str | None = None
    for line in markdown.splitlines():
        match = FENCE.match(line)
        if match:
            marker = match.group(2)
            if fence is None:
                fence = marker
            elif marker.startswith(fence):
                fence = None
        elif fence is None and line.startswith("#"):
            line = "#" * levels + line
        out.append(line)
    return "\n".join(out) + "\n"


def expand(markdown: str) -> str:
    def generate(match: re.Match[str]) -> str:
        kind, argument = match.group(1), match.group(2)
        if kind not in GENERATORS:
            raise DocsError(f"unknown generated content {kind!r} (one of {', '.join(GENERATORS)})")
        return GENERATORS[kind](argument)

    return MARKER.sub(generate, markdown)


def source_links(markdown: str) -> list[str]:
    return SOURCE_LINK.findall(markdown)


def check_source_path(path: str) -> Path:
    if not path.startswith(SOURCE_ROOTS) or ".." in path.split("/"):
        raise DocsError(f"src:{path} is outside what the docs may show ({', '.join(SOURCE_ROOTS)})")
    target = ROOT / path
    if path.endswith("/") and not target.is_dir():
        raise DocsError(f"src:{path}: no such folder in the repository")
    if not path.endswith("/") and not target.is_file():
        raise DocsError(f"src:{path}: no such file in the repository")
    return target


def source_page_uri(path: str) -> str:
    # MkDocs leaves out files whose names start with a dot: `.ci/run` is shown as `_ci/run`.
    path = "/".join(f"_{part[1:]}" if part.startswith(".") else part for part in path.split("/"))
    return f"src/{path}index.md" if path.endswith("/") else f"src/{path}.md"


# Source pages stay out of the search index: readers search the docs, and the code would make the
# index half a megabyte larger (the browser builds the index on every page it opens).
SOURCE_FRONT_MATTER = "---\nsearch:\n  exclude: true\n---\n\n"


def source_page(path: str) -> str:
    target = check_source_path(path)
    if target.is_dir():
        entries = sorted(
            p for p in target.iterdir() if p.name != "__pycache__" and not p.name.startswith(".")
        )
        listing = "\n".join(f"- `{p.name}{'/' if p.is_dir() else ''}`" for p in entries)
        heading = f"# `{path}`\n\nA folder of the repository. It holds:\n\n"
        return f"{SOURCE_FRONT_MATTER}{heading}{listing}\n"
    text = target.read_text(encoding="utf-8")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    language = LANGUAGES.get(target.suffix, "dockerfile" if target.name == "Dockerfile" else "")
    return (
        f"{SOURCE_FRONT_MATTER}# `{path}`\n\nThe file as it is in the repository, at the commit "
        f"the site was built from.\n\n{fence}{language}\n{text.rstrip()}\n{fence}\n"
    )


# --- MkDocs events ---------------------------------------------------------------------------


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    wanted: set[str] = set()
    for page in files.documentation_pages():
        if page.generated_by is None:
            wanted.update(source_links(page.content_string))
    for path in sorted(wanted):
        files.append(File.generated(config, source_page_uri(path), content=source_page(path)))
    for service in SERVICES:
        document = json.dumps(openapi_document(service), indent=2, ensure_ascii=False)
        files.append(File.generated(config, f"reference/openapi/{service}.json", content=document))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    here = posixpath.dirname(page.file.src_uri)

    def relink(match: re.Match[str]) -> str:
        path = match.group(1)
        check_source_path(path)
        return f"]({posixpath.relpath(source_page_uri(path), here)})"

    return SOURCE_LINK.sub(relink, expand(markdown))
