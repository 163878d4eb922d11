"""Fetching a PhantomBuster run's result object when its webhook lacks it.

Only two kinds of URL are ever requested: the configured API base
(`containers/fetch-result-object`, with the API key) and result files on the
configured result hosts. A URL found in a payload is never fetched otherwise,
so a payload cannot make the gateway call an arbitrary address; nor one with
white space, control or non-ASCII characters, which HTTP clients refuse or
read differently than the allowlist check does.
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import urlsplit

import httpx
import structlog

from gateway.delivery import Fetched
from gateway.settings import Settings
from providers.base import ResultFetch

log = structlog.get_logger(__name__)


#: What a result file URL may contain: printable ASCII, no space.
_URL_CHARACTERS = re.compile(r"[!-~]+")


class FetchError(Exception):
    """The result object could not be fetched; the delivery stays pending."""


class ResultFetcher:
    """Bounded, retried GETs against the PhantomBuster API and result hosts."""

    attempts = 3

    def __init__(self, settings: Settings, client: httpx.AsyncClient | None = None) -> None:
        self._settings = settings
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(settings.phantombuster_fetch_deadline_s / self.attempts),
            follow_redirects=False,
        )
        self.deadline_s = settings.phantombuster_fetch_deadline_s
        """Total time one delivery's result fetch may take (`normalize` enforces it)."""
        self._api_base = settings.phantombuster_api_base.rstrip("/")
        self._result_hosts = frozenset(h.lower() for h in settings.phantombuster_result_hosts)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def fetch(self, request: ResultFetch) -> Fetched:
        """The result file when a permitted `jsonUrl` is given, else the API's result object."""
        if request.json_url is not None:
            refused = self._refusal(request.json_url)
            if refused is None:
                return await self._get(request.json_url, headers={})
            if request.container_id is None:
                raise FetchError(refused)
            log.warning("phantombuster.result_url_refused", reason=refused)
        if request.container_id is None:
            raise FetchError("no containerId to fetch the result object with")
        key = self._settings.phantombuster_api_key
        if not key:
            raise FetchError("result object absent and PHANTOMBUSTER_API_KEY is not set")
        url = f"{self._api_base}/containers/fetch-result-object"
        return await self._get(
            url,
            headers={"X-Phantombuster-Key": key, "Accept": "application/json"},
            params={"id": request.container_id},
        )

    def _refusal(self, url: str) -> str | None:
        """Why a result file URL is not fetched; None when it may be."""
        if not _URL_CHARACTERS.fullmatch(url):
            return "result file URL holds white space, control or non-ASCII characters"
        try:
            parts = urlsplit(url)
            host = parts.hostname or ""
            _ = parts.port  # out of range: ValueError here, or a crash in the client
        except ValueError:
            return "result file URL is malformed"
        if (
            parts.scheme not in ("https", "http")
            or parts.username
            or parts.password
            or host not in self._result_hosts
        ):
            return f"result file host not allowed: {host!r}"
        return None

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
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                last_error = type(exc).__name__
        raise FetchError(
            f"fetching from {_host(url)} failed after {self.attempts} attempts: {last_error}"
        )


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""
