"""A client that sends its body too slowly gets 408, and the gateway keeps serving."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.helpers import gateway_env, serving

pytestmark = pytest.mark.slow


def test_slow_body_gets_408(database_url: str, tmp_path: Path) -> None:
    env = gateway_env(
        DATABASE_URL=database_url,
        GATEWAY_DATA_DIR=str(tmp_path),
        GATEWAY_SECRET_LEMLIST="s3cret",
        GATEWAY_BODY_READ_TIMEOUT_S="1",
    )
    with serving(env, tmp_path) as (base, _):
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(
                b"POST /webhooks/lemlist?token=s3cret HTTP/1.1\r\nHost: x\r\n"
                b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"_id":'
            )
            started = time.monotonic()
            answer = sock.recv(4096)
            assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
            assert time.monotonic() - started < 5
        assert httpx.get(f"{base}/healthz").status_code == 200
