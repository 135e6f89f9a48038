"""SIGTERM on `serve`: a request in flight is answered, and a new connection is refused at once
(a proxy then tries another replica), with one worker and with several."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.databases import PostgresDatabases, fresh_database
from tests.e2e.servers import BIN, auth_env, free_port, start_process

pytestmark = pytest.mark.e2e


def _partial_request(port: int) -> tuple[socket.socket, bytes]:
    """A token request sent up to the middle of its body: in flight until the rest is sent."""
    body = urlencode({"grant_type": "client_credentials", "client_id": "nobody"}).encode()
    conn = socket.create_connection(("127.0.0.1", port), timeout=15)
    head = (
        "POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    conn.sendall(head + body[:5])
    time.sleep(0.3)  # the server has read the headers and waits for the body
    return conn, body[5:]


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_answers_the_request_in_flight_and_refuses_new_connections(
    workers: int,
    tmp_path: Path,
    _sqlite_templates: dict[str, Path],
    pg_databases: PostgresDatabases,
) -> None:
    port = free_port()
    db = fresh_database("sqlite", "auth", tmp_path, _sqlite_templates, pg_databases)
    env = auth_env(f"http://127.0.0.1:{port}", db, tmp_path / "var")
    argv = [str(BIN / "auth-server"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    server = start_process("auth", [*argv, "--workers", str(workers)], port, env, tmp_path)
    try:
        conn, rest = _partial_request(port)
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.8)  # the workers have begun to drain
        assert server.proc.poll() is None, "exited with a request in flight"
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        conn.sendall(rest)
        answer = b""
        while chunk := conn.recv(65536):  # the server closes the connection after answering
            answer += chunk
        conn.close()
        # The request in flight got its answer (an unknown client: invalid_client).
        assert answer.startswith(b"HTTP/1.1 400") and b"invalid_client" in answer, answer[:200]
        # Done draining, it exits (one uvicorn worker re-raises the SIGTERM once it is done).
        assert server.proc.wait(timeout=20) in (0, -signal.SIGTERM)
    finally:
        server.stop()
