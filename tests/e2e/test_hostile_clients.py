"""Hostile clients on a real socket: raw bytes, slow heads, idle and excess connections.

A real `gateway serve` (uvicorn, httptools) in a subprocess, spoken to with
plain sockets, so that what no HTTP client library would send is sent too.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import select
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import asyncpg
import httpx
import pytest

from tests.conftest import fixture_body
from tests.e2e.helpers import gateway_env, serving

pytestmark = pytest.mark.slow

SECRETS = {"lemlist": "lemlist-s3cret", "postmark": "postmark-s3cret", "phantombuster": "pb-s3cret"}
API_KEY = "hostile-api-key"


@pytest.fixture(scope="module")
def gateway(
    create_migrated_database: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, int, str]]:
    """One `gateway serve` on a fresh database: (base URL, port, database URL)."""
    url = create_migrated_database()
    tmp_path = tmp_path_factory.mktemp("hostile")
    env = gateway_env(
        DATABASE_URL=url,
        GATEWAY_DATA_DIR=str(tmp_path / "data"),
        GATEWAY_API_KEY=API_KEY,
        GATEWAY_BODY_READ_TIMEOUT_S="5",
        **{f"GATEWAY_SECRET_{p.upper()}": s for p, s in SECRETS.items()},
    )
    with serving(env, tmp_path) as (base, _):
        yield base, int(base.rsplit(":", 1)[1]), url


class Answer(NamedTuple):
    status: int | None
    """None: the connection closed (or went silent) without a status line."""
    headers: dict[bytes, bytes]
    body: bytes


def exchange(port: int, raw: bytes, timeout_s: float = 15) -> Answer:
    """Send raw bytes on a fresh connection; read one answer (or none)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        with contextlib.suppress(OSError):  # the server may answer and close before the end
            sock.sendall(raw)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(b":") for line in lines[1:])
            }
            length = int(headers.get(b"content-length", b"0") or 0)
            while len(body) < length:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                body += chunk
        except (TimeoutError, ConnectionResetError):
            return Answer(None, {}, b"")
    if not lines[0].startswith(b"HTTP/1.1 "):
        return Answer(None, {}, b"")
    return Answer(int(lines[0].split()[1]), headers, body)


def request(
    method: bytes = b"POST",
    target: bytes = b"/webhooks/lemlist",
    headers: list[bytes] | None = None,
    body: bytes = b"",
    *,
    length: bool = True,
) -> bytes:
    """An HTTP/1.1 request from raw parts (Content-Length added unless `length` is False)."""
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: gateway.test", b"Connection: close"]
    lines += headers or []
    if length:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def basic(password: bytes, user: bytes = b"pm") -> bytes:
    return b"Authorization: Basic " + base64.b64encode(user + b":" + password)


def cases() -> list[tuple[str, bytes]]:
    """Several hundred hostile requests: authenticated and not, well-formed and not."""
    made: list[tuple[str, bytes]] = []
    lemlist = fixture_body("lemlist", "emailsSent.json")
    bodies = {
        "fixture": lemlist,
        "garbage": bytes(range(256)),
        "invalid utf-8": b'{"_id": "\xff\xfe", "type": "emailsSent"}',
        "deep": b'{"a":' * 5000 + b"1" + b"}" * 5000,
        "empty": b"",
        "year 1": json.dumps(
            json.loads(lemlist) | {"createdAt": "0001-01-01T00:00:00+05:00"}
        ).encode(),
        "secret echoed": json.dumps(json.loads(lemlist) | {"secret": SECRETS["lemlist"]}).encode(),
        "nul characters": json.dumps({"_id": "a\u0000b", "type": "emailsSent\u0000"}).encode(),
        "jsonUrl with control characters": json.dumps(
            json.loads(fixture_body("phantombuster", "result_json_url.json"))
            | {"resultObject": {"jsonUrl": "https://phantombuster.s3.amazonaws.com/a\tb\r\n\x01"}}
        ).encode(),
    }
    for provider, secret in SECRETS.items():
        auths = {
            "token": (b"?token=" + secret.encode(), []),
            "basic": (b"", [basic(secret.encode())]),
            "none": (b"", []),
            "wrong token": (b"?token=wrong", []),
            "basic latin-1": (b"", [b"Authorization: Basic \xe9"]),
            "basic utf-8": (b"", ["Authorization: Basic é".encode()]),
            "basic 0xff": (b"", [b"Authorization: Basic \xff\xfe\xfd"]),
            "basic non-utf-8 password": (b"", [basic(b"\xff" + secret.encode())]),
            "two authorizations": (b"", [b"Authorization: Basic \xe9", basic(secret.encode())]),
            "bearer": (b"", [b"Authorization: Bearer " + secret.encode()]),
            "token percent garbage": (b"?token=%ff%fe%", []),
            "token twice": (b"?token=wrong&token=" + secret.encode(), []),
        }
        for auth, (query, auth_headers) in auths.items():
            for name, body in bodies.items():
                made.append(
                    (
                        f"{provider} {auth} {name}",
                        request(
                            target=b"/webhooks/" + provider.encode() + query,
                            headers=auth_headers,
                            body=body,
                        ),
                    )
                )
    token = b"?token=" + SECRETS["lemlist"].encode()
    header_anomalies: dict[str, list[bytes]] = {
        "content-type latin-1": [b"Content-Type: \xfc\xe9"],
        "huge header": [b"X-Big: " + b"a" * 60_000],
        "many headers": [b"X-N%d: v" % n for n in range(200)],
        "header name non-ascii": ["X-Ünïcode: v".encode()],
        "header value DEL": [b"X-Del: \x7f"],
        "header value NUL": [b"X-Nul: a\x00b"],
        "header value CR": [b"X-Cr: a\rb"],
        "obs-fold": [b"X-Fold: a", b" continued"],
        "space before colon": [b"X-Space : v"],
        "empty header name": [b": v"],
        "no colon": [b"JustAName"],
        "x-forwarded-for garbage": [b"X-Forwarded-For: \xff, ::1, 999.1.1.1"],
        "expect 100": [b"Expect: 100-continue"],
        "expect odd": [b"Expect: \xe9"],
        "upgrade websocket": [b"Upgrade: websocket", b"Connection: Upgrade"],
        "upgrade h2c": [b"Upgrade: h2c", b"HTTP2-Settings: AAMAAABkAAQAAP__"],
        "x-api-key latin-1": [b"X-API-Key: \xe9\xff"],
        "cookie garbage": [b"Cookie: \xff=\xfe; ;;; a"],
        "accept garbage": [b"Accept: \xff/\xfe"],
        "host empty": [b"Host: "],
        "host garbage": [b"Host: \xff\xfe:99999"],
        "two hosts": [b"Host: a", b"Host: b"],
        "content-encoding gzip": [b"Content-Encoding: gzip"],
    }
    for provider in ("lemlist", "postmark"):
        for name, extra in header_anomalies.items():
            made.append(
                (
                    f"{provider} {name}",
                    request(
                        target=b"/webhooks/" + provider.encode() + token,
                        headers=extra,
                        body=lemlist,
                    ),
                )
            )
    lengths = {
        "content-length 2^31": b"2147483648",
        "content-length 2^63": b"9223372036854775808",
        "content-length 40 digits": b"9" * 40,
        "content-length negative": b"-1",
        "content-length plus": b"+5",
        "content-length hex": b"0x10",
        "content-length arabic digits": "١٢".encode(),
        "content-length superscript": b"\xb2",
        "content-length list": b"5, 5",
        "content-length empty": b"",
        "content-length spaces": b" 5 ",
    }
    for auth, query in (("token", token), ("none", b"")):
        for name, value in lengths.items():
            made.append(
                (
                    f"{auth} {name}",
                    request(
                        target=b"/webhooks/lemlist" + query,
                        headers=[b"Content-Length: " + value],
                        body=b"{}",
                        length=False,
                    ),
                )
            )
        chunked = {
            "chunked": b"2\r\n{}\r\n0\r\n\r\n",
            "chunked bad size": b"zz\r\n{}\r\n0\r\n\r\n",
            "chunked huge size": b"ffffffffffffffffff\r\n{}\r\n0\r\n\r\n",
            "chunked negative": b"-2\r\n{}\r\n0\r\n\r\n",
            "chunked extension": b"2;ext=\xff\r\n{}\r\n0\r\n\r\n",
            "chunked trailer": b"2\r\n{}\r\n0\r\nX-Trailer: \xff\r\n\r\n",
        }
        for name, body in chunked.items():
            made.append(
                (
                    f"{auth} {name}",
                    request(
                        target=b"/webhooks/lemlist" + query,
                        headers=[b"Transfer-Encoding: chunked"],
                        body=body,
                        length=False,
                    ),
                )
            )
        made.append(
            (
                f"{auth} chunked and content-length",
                request(
                    target=b"/webhooks/lemlist" + query,
                    headers=[b"Transfer-Encoding: chunked", b"Content-Length: 2"],
                    body=b"2\r\n{}\r\n0\r\n\r\n",
                    length=False,
                ),
            )
        )
        made.append(
            (
                f"{auth} transfer-encoding gzip",
                request(
                    target=b"/webhooks/lemlist" + query,
                    headers=[b"Transfer-Encoding: gzip, chunked"],
                    body=b"2\r\n{}\r\n0\r\n\r\n",
                    length=False,
                ),
            )
        )
    targets = [
        b"/webhooks/unknown",
        b"/webhooks/%ff%fe",
        b"/webhooks/lem%00list",
        b"/webhooks/" + b"a" * 8000,
        b"/webhooks/lemlist/extra",
        b"//webhooks//lemlist",
        b"/webhooks/lemlist?" + b"a=b&" * 2000,
        b"/webhooks/lemlist?%ff=%fe&token=%e9",
        b"/webhooks/lemlist?token=" + b"%" * 10,
        b"/webhooks/lemlist?token=\xe9\xff",
        b"/webhooks/lemlist#fragment",
        b"/webhooks/../webhooks/lemlist",
        b"/webhooks/%2e%2e/lemlist",
        b"http://gateway.test/webhooks/lemlist",
        b"*",
        b"/\xff\xfe",
        b"/healthz?\xff",
        b"/readyz",
        b"/metrics?x=%ff",
        b"/schema/openapi.json",
        b"/console/%ff",
        b"/api/campaigns/templates?type=%ff",
        b"/api/campaigns/templates/not-a-uuid",
        b"/api/deliveries?status=%ff&provider=\xe9",
    ]
    for target in targets:
        for method in (b"GET", b"POST", b"PUT", b"DELETE", b"BREW"):
            made.append((f"{method.decode()} {target[:40]!r}", request(method, target, body=b"{}")))
    for name, credential in {
        "bearer latin-1": b"Authorization: Bearer \xe9",
        "bearer utf-8": "Authorization: Bearer é".encode(),
        "bearer empty": b"Authorization: Bearer",
        "basic latin-1": b"Authorization: Basic \xe9",
        "api key 0xff": b"X-API-Key: \xff",
        "api key right": b"X-API-Key: " + API_KEY.encode(),
    }.items():
        for method, target in (
            (b"POST", b"/api/campaigns/templates"),
            (b"GET", b"/api/campaigns/templates"),
            (b"DELETE", b"/api/campaigns/templates/00000000-0000-0000-0000-000000000001"),
        ):
            made.append(
                (
                    f"api {method.decode()} {name}",
                    request(method, target, [credential, b"Content-Type: application/json"], b"{"),
                )
            )
    raw_lines = {
        "http/0.9": b"GET /\r\n\r\n",
        "http/1.0": b"GET /healthz HTTP/1.0\r\n\r\n",
        "http/2.0": b"GET /healthz HTTP/2.0\r\n\r\n",
        "http/9.9": b"GET /healthz HTTP/9.9\r\n\r\n",
        "h2 preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "lowercase method": b"post /webhooks/lemlist HTTP/1.1\r\nHost: x\r\n\r\n",
        "no host": b"GET /healthz HTTP/1.1\r\n\r\n",
        "lf only": b"GET /healthz HTTP/1.1\nHost: x\n\n",
        "tls hello": bytes.fromhex("160301020001") + b"\x00" * 64,
        "binary": bytes(range(256)) * 4,
        "nul line": b"\x00\x00\x00\x00\r\n\r\n",
        "spaces in target": b"GET /health z HTTP/1.1\r\nHost: x\r\n\r\n",
        "tab in target": b"GET /health\tz HTTP/1.1\r\nHost: x\r\n\r\n",
        "long method": b"A" * 10_000 + b" / HTTP/1.1\r\n\r\n",
        "pipelined": request(b"GET", b"/healthz").replace(b"Connection: close", b"X: y")
        + request(b"POST", b"/webhooks/lemlist?token=" + SECRETS["lemlist"].encode(), [], lemlist),
    }
    made += [(f"raw {name}", raw) for name, raw in raw_lines.items()]
    return made


def test_hostile_raw_requests_never_get_a_server_error(gateway: tuple[str, int, str]) -> None:
    """Hundreds of raw requests, authenticated and not: no 5xx but a deliberate 503."""
    base, port, url = gateway
    all_cases = cases()
    assert len(all_cases) >= 500
    server_errors: list[str] = []
    acknowledged: set[str] = set()
    statuses: dict[int | None, int] = {}
    for name, raw in all_cases:
        answer = exchange(port, raw)
        statuses[answer.status] = statuses.get(answer.status, 0) + 1
        if answer.status is not None and answer.status >= 500:
            deliberate = answer.status == 503 and b"retry-after" in answer.headers
            if not deliberate:
                server_errors.append(f"{name}: {answer.status} {answer.body[:200]!r}")
        if answer.status in (200, 400, 413) and answer.body.startswith(b"{"):
            delivery = json.loads(answer.body).get("delivery_id")
            if delivery:
                acknowledged.add(delivery)
    assert not server_errors, "\n".join(server_errors)
    assert statuses.get(401, 0) > 50 and statuses.get(200, 0) > 30, statuses
    assert httpx.get(f"{base}/readyz").status_code == 200

    async def stored() -> set[str]:
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch("SELECT id::text, query, headers FROM webhook_deliveries")
        finally:
            await conn.close()
        for row in rows:  # and never a secret among them
            assert not any(s in str(row["query"]) + str(row["headers"]) for s in SECRETS.values())
        return {row["id"] for row in rows}

    # Every delivery the gateway answered with an id is stored.
    assert acknowledged <= asyncio.run(stored())


def test_announced_sizes_past_the_limit_are_answered_before_the_body(
    gateway: tuple[str, int, str],
) -> None:
    """A body past the provider's limit is answered 413 long before it ends: the
    gateway holds at most the limit of it (PhantomBuster 16 MiB, lemlist 1 MiB).

    The kernel's socket buffers take a few MiB the gateway has not read yet.
    """
    buffers = 16 * 1024 * 1024
    stream = 64 * 1024 * 1024
    _, port, url = gateway
    for provider, limit in (("phantombuster", 16 * 1024 * 1024), ("lemlist", 1024 * 1024)):
        # Kept alive (no `Connection: close`): the gateway reads on and drops the rest.
        head = (
            f"POST /webhooks/{provider}?token={SECRETS[provider]} HTTP/1.1\r\n"
            "Host: gateway.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        ).encode()
        chunk = b"x" * (256 * 1024)
        sent, answer = 0, b""
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(head)
            while sent < stream and not answer:
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                sent += len(chunk)
                if select.select([sock], [], [], 0)[0]:
                    answer = sock.recv(65536)
            if not answer:
                answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
        assert limit < sent < limit + buffers, f"{provider}: answered after {sent} bytes"

    async def causes() -> list[str]:
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch(
                "SELECT cause FROM webhook_deliveries WHERE cause LIKE 'body of %+ bytes exceeds%'"
            )
        finally:
            await conn.close()
        return sorted(r["cause"] for r in rows)

    found = asyncio.run(causes())
    assert any("GATEWAY_MAX_BODY_BYTES_PHANTOMBUSTER=16777216" in c for c in found), found
    assert any("GATEWAY_MAX_BODY_BYTES_LEMLIST=1048576" in c for c in found), found


def test_slow_silent_idle_and_excess_connections(
    create_migrated_database: Callable[[], str], tmp_path: Path
) -> None:
    """Issue 13: 100 dribbling and 100 silent connections were all open after 80 s.

    Contract: a request head within 10 s, idle keep-alive closed after 5 s, and
    past GATEWAY_MAX_CONNECTIONS new requests get 503.
    """
    url = create_migrated_database()
    env = gateway_env(
        DATABASE_URL=url,
        GATEWAY_DATA_DIR=str(tmp_path / "data"),
        GATEWAY_SECRET_LEMLIST="s3cret",
        GATEWAY_MAX_CONNECTIONS="20",
    )
    with serving(env, tmp_path) as (base, _):
        port = int(base.rsplit(":", 1)[1])

        def connect() -> socket.socket:
            return socket.create_connection(("127.0.0.1", port), timeout=30)

        started = time.monotonic()
        silent = [connect() for _ in range(12)]
        dribbling = [connect() for _ in range(6)]
        for sock in dribbling:
            sock.sendall(b"POST /webhooks/lemlist?token=s3cret HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        idle = connect()
        idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert idle.recv(4096).startswith(b"HTTP/1.1 200")
        answered_idle = time.monotonic()
        # 12 + 6 + 1 open: the 20th connection is served, the 21st is over the cap.
        twentieth, twenty_first = connect(), connect()
        twentieth.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert twentieth.recv(4096).startswith(b"HTTP/1.1 200")
        twenty_first.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        refused = b""
        while chunk := twenty_first.recv(4096):  # read until the gateway closes it
            refused += chunk
        assert refused.startswith(b"HTTP/1.1 503"), refused
        assert b"retry-after: 5" in refused.lower() and b"application/problem+json" in refused
        assert b"too many open connections" in refused
        twenty_first.close()
        twentieth.close()

        closed_at: dict[socket.socket, float] = {}
        watched = [*silent, *dribbling, idle]
        while len(closed_at) < len(watched) and time.monotonic() - started < 30:
            for sock in dribbling:
                if sock not in closed_at:
                    try:
                        sock.send(b"a")  # one byte a second: never a complete head
                    except OSError:
                        closed_at[sock] = time.monotonic()
            waiting = [s for s in watched if s not in closed_at]
            readable, _, _ = select.select(waiting, [], [], 1.0)
            for sock in readable:
                try:
                    data = sock.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    closed_at[sock] = time.monotonic()
        for sock in watched:
            sock.close()
        assert len(closed_at) == len(watched), f"{len(watched) - len(closed_at)} still open"
        idle_for = closed_at[idle] - answered_idle
        assert 4 <= idle_for <= 8, f"idle keep-alive closed after {idle_for:.1f}s"
        for sock in [*silent, *dribbling]:
            lasted = closed_at[sock] - started
            assert 9 <= lasted <= 14, f"a head-less connection was closed after {lasted:.1f}s"
        # Under the cap again: served as usual.
        assert httpx.get(f"{base}/healthz").status_code == 200
