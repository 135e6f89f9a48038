"""`serve --ssl-certfile --ssl-keyfile`: the auth server speaks TLS, a client logs in over it with
a self-signed certificate made here, and the answers carry Strict-Transport-Security."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.code_flow import code_flow
from tests.databases import PostgresDatabases, fresh_database
from tests.e2e.flows import PASSWORD
from tests.e2e.servers import BIN, auth_env, free_port, start_process

pytestmark = pytest.mark.e2e


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_logging_in_over_tls_with_a_self_signed_certificate(
    tmp_path: Path, _sqlite_templates: dict[str, Path], pg_databases: PostgresDatabases
) -> None:
    cert, key = self_signed(tmp_path)
    port = free_port()
    issuer = f"https://127.0.0.1:{port}"
    database = fresh_database("sqlite", "auth", tmp_path, _sqlite_templates, pg_databases)
    env = auth_env(issuer, database, tmp_path / "var") | {
        "AUTH_CORS_ORIGINS": "https://127.0.0.1:8443"
    }
    server = start_process(
        "auth-tls",
        [
            str(BIN / "auth-server"),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--ssl-certfile",
            str(cert),
            "--ssl-keyfile",
            str(key),
        ],
        port,
        env,
        tmp_path,
        tls_verify=str(cert),
    )
    try:
        context = ssl.create_default_context(cafile=str(cert))
        async with httpx.AsyncClient(base_url=issuer, verify=context, timeout=10) as http:
            created = await http.post(
                "/users",
                json={"username": "tls-user", "email": "tls@example.com", "password": PASSWORD},
            )
            assert created.status_code == 201, created.text
            login = await http.post(
                "/token",
                data={
                    "grant_type": "password",
                    "username": "tls-user",
                    "password": PASSWORD,
                    "client_id": "web",
                },
            )
            assert login.status_code == 200, login.text
            hsts = login.headers["Strict-Transport-Security"]
            assert hsts.startswith("max-age=") and int(hsts.split("=")[1].split(";")[0]) >= 31536000
            metadata = (await http.get("/.well-known/oauth-authorization-server")).json()
            assert metadata["token_endpoint"] == f"{issuer}/token"
            # The page's refresh cookie and the browser session's cookie are Secure under TLS.
        with httpx.Client(verify=context, timeout=10) as browser:
            page = code_flow(
                browser,
                issuer,
                username="tls-user",
                password=PASSWORD,
                client_id="web-page",
                redirect_uri="https://127.0.0.1:8443/callback",
                token_headers={"Origin": "https://127.0.0.1:8443"},
            )
            assert page.status_code == 200, page.text
            assert all("Secure" in c for c in page.headers.get_list("set-cookie"))
            session = [c for c in browser.cookies.jar if c.name == "notes_auth_session"]
            assert len(session) == 1 and session[0].secure
        with pytest.raises(httpx.ConnectError):  # an unverified client is refused by TLS itself
            async with httpx.AsyncClient(base_url=issuer, timeout=5) as untrusting:
                await untrusting.get("/healthz")
    finally:
        server.stop()
