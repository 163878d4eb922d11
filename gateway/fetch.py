"""Fetching a PhantomBuster run's result object when its webhook lacks it.

Only two kinds of URL are ever requested: the configured API base
(`containers/fetch-result-object`, with the API key) and result files on the
configured result hosts. A URL found in a payload is never fetched otherwise,
so a payload cannot make the gateway call an arbitrary address.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import httpx
import msgspec
import structlog

from gateway.settings import Settings
from providers.base import ResultFetch

log = structlog.get_logger(__name__)


class FetchError(Exception):
    """The result object could not be fetched; the delivery stays pending."""


class Fetched(msgspec.Struct, frozen=True, kw_only=True):
    """A fetched result object and where it came from."""

    body: bytes
    source: str


class ResultFetcher:
    """Bounded, retried GETs against the PhantomBuster API and result hosts."""

    attempts = 3

    def __init__(self, settings: Settings, client: httpx.AsyncClient | None = None) -> None:
        self._settings = settings
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(settings.phantombuster_timeout_s / self.attempts),
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def fetch(self, request: ResultFetch) -> Fetched:
        """The result file when a permitted `jsonUrl` is given, else the API's result object."""
        if request.json_url is not None:
            if self._is_result_host(request.json_url):
                return await self._get(request.json_url, headers={})
            if request.container_id is None:
                raise FetchError(f"result file host not allowed: {_host(request.json_url)!r}")
            log.warning("phantombuster.result_host_refused", host=_host(request.json_url))
        if request.container_id is None:
            raise FetchError("no containerId to fetch the result object with")
        key = self._settings.phantombuster_api_key
        if not key:
            raise FetchError("result object absent and PHANTOMBUSTER_API_KEY is not set")
        url = f"{self._settings.phantombuster_api_base}/containers/fetch-result-object"
        return await self._get(
            url,
            headers={"X-Phantombuster-Key": key, "Accept": "application/json"},
            params={"id": request.container_id},
        )

    def _is_result_host(self, url: str) -> bool:
        parts = urlsplit(url)
        return (
            parts.scheme in ("https", "http")
            and not parts.username
            and not parts.password
            and (parts.hostname or "") in self._settings.phantombuster_result_hosts
        )

    async def _get(
        self, url: str, headers: dict[str, str], params: dict[str, str] | None = None
    ) -> Fetched:
        limit = self._settings.phantombuster_max_result_bytes
        last_error = "no attempt made"
        for attempt in range(self.attempts):
            if attempt:
                await asyncio.sleep(0.2 * 2**attempt)
            try:
                async with self._client.stream("GET", url, headers=headers, params=params) as resp:
                    if resp.status_code >= 500 or resp.status_code == 429:
                        last_error = f"HTTP {resp.status_code}"
                        continue
                    if resp.status_code != 200:
                        raise FetchError(f"{_host(url)} answered HTTP {resp.status_code}")
                    body = bytearray()
                    async for chunk in resp.aiter_bytes():
                        body += chunk
                        if len(body) > limit:
                            raise FetchError(f"result larger than {limit} bytes")
                    return Fetched(body=bytes(body), source=str(resp.url.copy_with(query=None)))
            except httpx.HTTPError as exc:
                last_error = type(exc).__name__
        raise FetchError(
            f"fetching from {_host(url)} failed after {self.attempts} attempts: {last_error}"
        )


def _host(url: str) -> str:
    return urlsplit(url).hostname or ""
