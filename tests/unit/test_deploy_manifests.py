"""The deployment files agree with the code (issue 12): docker-compose.yml, deploy/k8s/*.yaml,
deploy/Dockerfile and deploy/nginx.

Every environment variable given to a container of our image is a setting of the service it
runs (AuthSettings / ResourceSettings: prefix + field name) or one of the few variables the image
itself reads; every probe and health check path is answered by a route of that service; every reference
(ConfigMap, Secret key, Service, selector, port, autoscaler target, route backend) resolves.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
K8S = ROOT / "deploy" / "k8s"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"
NGINX_CONF = ROOT / "deploy" / "nginx" / "nginx.conf"
ROUTES_CONF = ROOT / "deploy" / "nginx" / "routes.conf"
IMAGE = "notes-auth"

# What a container runs, from its first argument (deploy/entrypoint.sh).
SERVICES = {"serve-auth": "auth", "serve-resource": "resource", "migrate": "migrate"}
PREFIXES = {"auth": ("AUTH_",), "resource": ("RESOURCE_",), "migrate": ("AUTH_", "RESOURCE_")}
PORTS = {"auth": 8000, "resource": 8001}

# Variables of our containers that are not settings, and what reads them.
NOT_SETTINGS = {
    "PORT": "deploy/entrypoint.sh (the listen port) and the image's HEALTHCHECK",
    "WEB_CONCURRENCY": "deploy/entrypoint.sh (uvicorn workers)",
    "PGPASSWORD": "asyncpg: the database password when the URL carries none",
    "SSL_CERT_FILE": "httpx: the CA file the resource server trusts for the issuer",
}
# NAME_FILE is turned into NAME by deploy/entrypoint.sh for these names.
FILE_VARIABLES = re.compile(r"^((AUTH|RESOURCE)_[A-Z0-9_]*|PGPASSWORD)_FILE$")
REQUIRED = {
    "auth": {"AUTH_ENVIRONMENT", "AUTH_DATABASE_URL", "AUTH_ISSUER", "AUTH_KEY_ENCRYPTION_KEY"},
    "resource": {"RESOURCE_ENVIRONMENT", "RESOURCE_DATABASE_URL", "RESOURCE_AUTH_SERVER_URL"},
}


# -- what the code says -------------------------------------------------------------------------


@cache
def settings_names() -> dict[str, frozenset[str]]:
    from auth_server.settings import AuthSettings
    from resource_server.settings import ResourceSettings

    return {
        "auth": frozenset(f"AUTH_{name.upper()}" for name in AuthSettings.model_fields),
        "resource": frozenset(f"RESOURCE_{name.upper()}" for name in ResourceSettings.model_fields),
    }


@cache
def app_of(service: str) -> Any:
    """The service's app, built by its factory (no lifespan: nothing is started)."""
    if service == "auth":
        from auth_server.main import create_app as create_auth
        from auth_server.settings import AuthSettings

        return create_auth(
            AuthSettings(
                _env_file=None,  # type: ignore[call-arg]
                environment="test",
                database_url="sqlite+aiosqlite:///:memory:",
                key_encryption_key="deploy-manifest-test-key-0123456789abcdef",
            )
        )
    from resource_server.main import create_app as create_resource
    from resource_server.settings import ResourceSettings

    return create_resource(
        ResourceSettings(
            _env_file=None,  # type: ignore[call-arg]
            environment="test",
            database_url="sqlite+aiosqlite:///:memory:",
        )
    )


def answers(service: str, path: str, method: str = "GET") -> bool:
    """Whether one of the app's routes fully matches `method path` (Starlette's own matching,
    so included routers and mounts count)."""
    from starlette.routing import Match

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "headers": [],
        "query_string": b"",
    }
    return any(route.matches(scope)[0] == Match.FULL for route in app_of(service).routes)


def test_answers_knows_routes_from_non_routes() -> None:
    assert answers("auth", "/readyz") and answers("resource", "/readyz")
    assert answers("auth", "/token", "POST") and not answers("auth", "/token")
    assert not answers("auth", "/no-such-route") and not answers("resource", "/no-such-route")


def env_name_problems(service: str, names: set[str]) -> list[str]:
    settings = settings_names()
    known = {
        n
        for s in (("auth", "resource") if service == "migrate" else (service,))
        for n in settings[s]
    }
    problems = []
    for name in sorted(names):
        plain = name
        match = FILE_VARIABLES.match(name)
        if match:
            plain = match.group(1)
        if plain in NOT_SETTINGS:
            continue
        if not plain.startswith(PREFIXES[service]):
            problems.append(f"{name}: not a variable of the {service} service")
        elif plain not in known:
            problems.append(f"{name}: no such setting ({'/'.join(PREFIXES[service])}...)")
    return problems


def provided(names: set[str], wanted: str) -> bool:
    return wanted in names or f"{wanted}_FILE" in names


def proxied(path: str) -> tuple[str, str]:
    """Where the one origin sends a path (deploy/nginx/routes.conf)."""
    if path == "/.well-known/oauth-authorization-server/auth":
        return "auth", "/.well-known/oauth-authorization-server"
    if path.startswith("/auth/"):
        return "auth", path[len("/auth") :]
    return "resource", path


def urls_in(text: str) -> list[tuple[str, int | None, str]]:
    """(scheme, port, path) of every loopback URL in a health check command."""
    found = []
    for scheme, port, path in re.findall(
        r"(https?)://(?:127\.0\.0\.1|localhost)(?::(\d+|%s))?(/[A-Za-z0-9_./-]*)", text
    ):
        found.append((scheme, int(port) if port.isdigit() else None, path))
    return found


# -- docker-compose.yml ---------------------------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def compose_app_services() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(compose service, what it runs, definition) for every service using our image."""
    for name, spec in compose()["services"].items():
        image = str(spec.get("image", ""))
        if image.split(":")[0] != IMAGE and "build" not in spec:
            continue
        command = spec.get("command") or ["serve-auth"]  # the image's CMD
        assert command[0] in SERVICES, f"compose service {name}: unknown command {command}"
        yield name, SERVICES[command[0]], spec


def test_compose_runs_every_part_of_the_topology() -> None:
    services = compose()["services"]
    runs = {service: name for name, service, _ in compose_app_services()}
    assert set(runs) == {"auth", "resource", "migrate"}
    for service in ("auth", "resource"):
        spec = services[runs[service]]
        assert spec["deploy"]["replicas"] >= 2, service
        assert spec["depends_on"][runs["migrate"]] == {
            "condition": "service_completed_successfully"
        }
    assert {"postgres", "redis", "proxy"} <= set(services)
    for backing in ("postgres", "redis"):
        assert "healthcheck" in services[backing], backing
        assert services[backing].get("volumes"), f"{backing} keeps its data in a volume"


@pytest.mark.parametrize("name", [n for n, _, _ in compose_app_services()])
def test_compose_env_names_are_settings_of_the_service(name: str) -> None:
    _, service, spec = next(s for s in compose_app_services() if s[0] == name)
    env = set((spec.get("environment") or {}).keys())
    assert env_name_problems(service, env) == []
    for required in REQUIRED.get(service, set()) | (
        REQUIRED["auth"] | REQUIRED["resource"] if service == "migrate" else set()
    ):
        assert provided(env, required), f"{name}: {required} is not set"


def test_compose_bakes_in_no_secret() -> None:
    for name, _, spec in compose_app_services():
        env = spec.get("environment") or {}
        for key, value in env.items():
            text = str(value)
            # A database URL carries no password (PGPASSWORD_FILE does).
            assert not re.search(r"://[^/@:]+:[^@/]+@", text), f"{name}: {key} holds a password"
            if key in ("AUTH_KEY_ENCRYPTION_KEY", "PGPASSWORD"):
                pytest.fail(f"{name}: {key} is given in clear; use {key}_FILE and a secret")
            if key.endswith("_FILE") and FILE_VARIABLES.match(key):
                assert text.startswith("/run/secrets/"), f"{name}: {key} is not a secret file"
    declared = set(compose().get("secrets", {}))
    for name, spec in compose()["services"].items():
        for secret in spec.get("secrets", []):
            assert secret in declared, f"{name}: secret {secret} is not declared"
    for secret in compose().get("secrets", {}).values():
        assert "file" in secret or "environment" in secret


def test_compose_issuer_is_the_resource_servers_auth_server() -> None:
    envs = {service: spec.get("environment") or {} for _, service, spec in compose_app_services()}
    assert envs["auth"]["AUTH_ISSUER"] == envs["resource"]["RESOURCE_AUTH_SERVER_URL"]
    assert envs["auth"]["AUTH_ISSUER"].startswith("https://")
    assert envs["auth"]["AUTH_ISSUER"].rstrip("/").endswith("/auth")  # routes.conf's prefix


def test_compose_health_checks_use_existing_routes() -> None:
    checked = 0
    for name, service, spec in compose_app_services():
        if service == "migrate":
            continue
        test = " ".join(spec["healthcheck"]["test"])
        for _, port, path in urls_in(test):
            assert port == PORTS[service] == int(spec["environment"]["PORT"]), name
            assert answers(service, path), f"{name}: {path} is not a route of {service}"
            checked += 1
    proxy = compose()["services"]["proxy"]
    for _, _, path in urls_in(" ".join(proxy["healthcheck"]["test"])):
        service, upstream = proxied(path)
        assert answers(service, upstream), f"proxy health check: {path}"
        checked += 1
    assert checked >= 3


def test_compose_proxy_serves_the_routes_file() -> None:
    proxy = compose()["services"]["proxy"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in proxy["volumes"]}
    assert mounts["./deploy/nginx/routes.conf"] in NGINX_CONF.read_text()
    assert mounts["./deploy/nginx/nginx.conf"] == "/etc/nginx/nginx.conf"
    conf = NGINX_CONF.read_text()
    for upstream in ("notes_auth", "notes_resource"):
        assert f"upstream {upstream}" in conf
        assert f"http://{upstream}" in ROUTES_CONF.read_text()
    assert "listen 443 ssl" in conf
    for secret in re.findall(r"/run/secrets/(\w+)", conf):
        assert secret in proxy["secrets"], secret


# -- deploy/k8s -----------------------------------------------------------------------------------


@cache
def k8s_objects() -> tuple[dict[str, Any], ...]:
    objects = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") != "Kustomization":
                objects.append(doc)
    return tuple(objects)


def k8s(kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in k8s_objects() if o["kind"] == kind}


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for kind in ("Deployment", "Job"):
        for name, obj in k8s(kind).items():
            yield f"{kind}/{name}", obj["spec"]["template"]["spec"]


def containers() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(where, what it runs, container) for every container of our image."""
    for where, spec in pod_specs():
        for container in spec.get("initContainers", []) + spec["containers"]:
            if container["image"].split(":")[0].split("/")[-1] != IMAGE:
                continue
            args = container.get("args") or ["serve-auth"]
            assert args[0] in SERVICES, f"{where}: unknown args {args}"
            yield f"{where}/{container['name']}", SERVICES[args[0]], container


def container_env(container: dict[str, Any]) -> set[str]:
    names = {e["name"] for e in container.get("env", [])}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            names |= set(k8s("ConfigMap")[source["configMapRef"]["name"]]["data"])
        if "secretRef" in source:
            names |= set(k8s("Secret")[source["secretRef"]["name"]]["stringData"])
    return names


def test_k8s_has_every_object_of_the_topology() -> None:
    assert set(k8s("Deployment")) == {"auth-server", "resource-server"}
    assert set(k8s("Service")) == {"auth-server", "resource-server"}
    assert set(k8s("PodDisruptionBudget")) == {"auth-server", "resource-server"}
    assert len(k8s("ConfigMap")) >= 1 and len(k8s("Secret")) == 1 and len(k8s("Job")) == 1
    (hpa,) = k8s("HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "resource-server",
    }
    assert hpa["spec"]["minReplicas"] >= 2
    (job,) = k8s("Job").values()
    assert [c["args"] for c in job["spec"]["template"]["spec"]["containers"]] == [["migrate"]]


@pytest.mark.parametrize("where", [w for w, _, _ in containers()])
def test_k8s_env_names_are_settings_of_the_service(where: str) -> None:
    _, service, container = next(c for c in containers() if c[0] == where)
    env = container_env(container)
    assert env_name_problems(service, env) == []
    needed = REQUIRED.get(service, REQUIRED["auth"] | REQUIRED["resource"])
    for required in needed:
        assert provided(env, required), f"{where}: {required} is not set"


def test_k8s_references_resolve() -> None:
    config_maps, secrets = k8s("ConfigMap"), k8s("Secret")
    for where, _, container in containers():
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                assert source["configMapRef"]["name"] in config_maps, where
        for entry in container.get("env", []):
            ref = entry.get("valueFrom", {})
            if "secretKeyRef" in ref:
                secret = secrets[ref["secretKeyRef"]["name"]]
                assert ref["secretKeyRef"]["key"] in secret["stringData"], (where, entry)
            if "configMapKeyRef" in ref:
                config_map = config_maps[ref["configMapKeyRef"]["name"]]
                assert ref["configMapKeyRef"]["key"] in config_map["data"], (where, entry)
    deployments = k8s("Deployment")
    for kind in ("Service", "PodDisruptionBudget"):
        for name, obj in k8s(kind).items():
            selector = obj["spec"]["selector"]
            selector = selector.get("matchLabels", selector)
            matched = [
                d
                for d in deployments.values()
                if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
            ]
            assert len(matched) == 1, f"{kind}/{name} selects {len(matched)} Deployments"
            if kind == "Service":
                ports = {
                    p.get("name"): p["containerPort"]
                    for c in matched[0]["spec"]["template"]["spec"]["containers"]
                    for p in c["ports"]
                }
                for port in obj["spec"]["ports"]:
                    target = port["targetPort"]
                    assert target in ports or target in ports.values(), (name, target)
    for deployment in deployments.values():
        spec = deployment["spec"]
        assert (
            spec["selector"]["matchLabels"].items()
            <= spec["template"]["metadata"]["labels"].items()
        )
    services = k8s("Service")
    for route in k8s("HTTPRoute").values():
        for rule in route["spec"]["rules"]:
            for backend in rule["backendRefs"]:
                ports = [p["port"] for p in services[backend["name"]]["spec"]["ports"]]
                assert backend["port"] in ports, backend


def test_k8s_probes_use_existing_routes_and_ports() -> None:
    checked = 0
    for where, service, container in containers():
        if service == "migrate":
            continue
        ports = {p.get("name"): p["containerPort"] for p in container["ports"]}
        assert set(ports.values()) == {PORTS[service]}, where
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        assert env.get("PORT") == str(PORTS[service]), where
        for probe in ("readinessProbe", "livenessProbe"):
            assert probe in container, f"{where} has no {probe}"
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            if probe not in container:
                continue
            http_get = container[probe]["httpGet"]
            assert answers(service, http_get["path"]), f"{where} {probe}: {http_get['path']}"
            assert http_get["port"] in ports or http_get["port"] in ports.values(), where
            checked += 1
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert checked >= 4


def test_k8s_issuer_is_the_resource_servers_auth_server() -> None:
    data = {}
    for config_map in k8s("ConfigMap").values():
        data |= config_map["data"]
    assert data["AUTH_ISSUER"] == data["RESOURCE_AUTH_SERVER_URL"]
    assert data["AUTH_ENVIRONMENT"] == data["RESOURCE_ENVIRONMENT"] == "production"


def test_k8s_shuts_down_gracefully_and_runs_unprivileged() -> None:
    for where, spec in pod_specs():
        assert spec["securityContext"]["runAsNonRoot"] is True, where
    for name, deployment in k8s("Deployment").items():
        spec = deployment["spec"]
        assert spec["replicas"] >= 2, name
        assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0, name
        pod = spec["template"]["spec"]
        (container,) = pod["containers"]
        pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
        assert pre_stop[0] == "sleep"
        assert pod["terminationGracePeriodSeconds"] > int(pre_stop[1]) + 10, name


# -- deploy/Dockerfile and deploy/entrypoint.sh --------------------------------------------------


def test_dockerfile_is_multi_stage_locked_unprivileged_and_checks_health() -> None:
    text = DOCKERFILE.read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2
    assert re.search(r"pip install [^\n]*--no-deps -r requirements\.lock", text)
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and not users[-1].startswith(("0", "root"))
    healthcheck = re.search(r"^HEALTHCHECK .*?(?=^\S)", text, re.M | re.S)
    assert healthcheck is not None
    paths = [path for _, _, path in urls_in(healthcheck.group(0))]
    assert paths
    for path in paths:
        assert answers("auth", path) and answers("resource", path), path
    assert 'ENTRYPOINT ["notes-auth-entrypoint"]' in text
    assert "deploy/entrypoint.sh" in text


def test_every_variable_the_image_reads_is_read_somewhere() -> None:
    entrypoint = ENTRYPOINT.read_text()
    for name in ("PORT", "WEB_CONCURRENCY"):
        assert f"${{{name}" in entrypoint, name
    assert "_FILE" in entrypoint and "PGPASSWORD" in entrypoint
    for command in SERVICES:
        assert f"{command})" in entrypoint, command
