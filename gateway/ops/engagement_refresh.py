"""`gateway engagement refresh`: download Apple's iCloud Private Relay egress ranges.

Apple Mail Privacy Protection fetches images through the Private Relay
infrastructure, whose egress ranges Apple publishes as a CSV (one range a line:
`prefix,country,region,city,`). The list is large and changes, so it is not
shipped: this command downloads it once, collapses adjacent ranges, and writes
`GATEWAY_DATA_DIR/engagement/icloud-private-relay-egress.txt`, which the gateway
loads at startup (`gateway.engagement.load_static_rules`). Nothing is fetched
at ingest.
"""

from __future__ import annotations

import ipaddress
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, NamedTuple

import httpx

from gateway.engagement import PRIVATE_RELAY_FILE

PRIVATE_RELAY_URL: Final = "https://mask-api.icloud.com/egress-ip-ranges.csv"
#: The published list was about 10 MB in 2024; anything far larger is not that list.
MAX_BYTES: Final = 128 * 1024 * 1024
TIMEOUT_S: Final = 120.0


class RefreshError(Exception):
    """The list could not be downloaded or held no range; the previous copy is kept."""


class Refreshed(NamedTuple):
    """What a refresh wrote."""

    path: Path
    ranges: int
    """Valid ranges read from the published list."""
    networks: int
    """Networks written after collapsing adjacent and nested ranges."""
    skipped: int
    """Lines that held no valid range."""


async def refresh_private_relay(
    data_dir: Path,
    url: str = PRIVATE_RELAY_URL,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    now: datetime | None = None,
) -> Refreshed:
    """Download, validate and collapse the egress ranges; replace the stored copy atomically."""
    body = await _download(url, transport)
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    skipped = 0
    for line in body.decode("utf-8", "replace").splitlines():
        field = line.split(",", 1)[0].strip()
        if not field or field.startswith("#"):
            continue
        try:
            networks.append(ipaddress.ip_network(field, strict=False))
        except ValueError:
            skipped += 1
    if not networks:
        raise RefreshError(f"{url} held no IP range ({skipped} unreadable lines); nothing written")
    v4 = [n for n in networks if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in networks if isinstance(n, ipaddress.IPv6Network)]
    collapsed = [*ipaddress.collapse_addresses(v4), *ipaddress.collapse_addresses(v6)]
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    header = (
        f"# iCloud Private Relay egress ranges (rule apple_mpp_network, opens only)\n"
        f"# source: {url}\n# fetched: {stamp}\n"
        f"# {len(networks)} published ranges collapsed into {len(collapsed)} networks\n"
    )
    target = data_dir / "engagement" / PRIVATE_RELAY_FILE
    _write_atomically(target, header + "".join(f"{n}\n" for n in collapsed))
    return Refreshed(target, len(networks), len(collapsed), skipped)


async def _download(url: str, transport: httpx.AsyncBaseTransport | None) -> bytes:
    try:
        async with (
            httpx.AsyncClient(transport=transport, timeout=TIMEOUT_S) as client,
            client.stream("GET", url, follow_redirects=True) as response,
        ):
            if response.status_code != 200:
                raise RefreshError(f"{url} answered HTTP {response.status_code}; nothing written")
            chunks = bytearray()
            async for chunk in response.aiter_bytes():
                chunks += chunk
                if len(chunks) > MAX_BYTES:
                    raise RefreshError(f"{url} is larger than {MAX_BYTES} bytes; nothing written")
            return bytes(chunks)
    except httpx.HTTPError as exc:
        raise RefreshError(f"could not download {url}: {type(exc).__name__}: {exc}") from exc


def _write_atomically(target: Path, text: str) -> None:
    """Write next to the target, fsync, rename: a crash leaves the old copy or the new one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
