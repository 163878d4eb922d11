"""All configuration, read from the environment in one place and passed in.

Nothing reads `os.environ` at import time; tests build their own Settings.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import msgspec

from providers.vocabulary import PROVIDERS

DEFAULT_RESULT_HOSTS: tuple[str, ...] = (
    "phantombuster.s3.amazonaws.com",
    "cache1.phantombooster.com",
)


#: PhantomBuster's default body limit: a run's inline result object can be large.
PHANTOMBUSTER_DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024


class SettingsError(ValueError):
    """An environment variable holds a value the gateway cannot use."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """The gateway's configuration; see the README's configuration table."""

    database_url: str | None = None
    """PostgreSQL URL; None starts the embedded PostgreSQL under `data_dir`."""
    data_dir: Path = Path(".gateway")
    """Where the embedded PostgreSQL and generated secrets live."""
    secrets: dict[str, tuple[str, ...]] = msgspec.field(default_factory=dict)
    """Configured webhook secrets per provider; a provider missing here gets a generated one."""
    api_keys: tuple[str, ...] = ()
    """Keys accepted by the management API (several for rotation); none: one is generated."""
    api_reads_open: bool = True
    """Whether `GET /api/…` answers without an API key; writes always need one."""
    base_url: str | None = None
    """The public base URL that `gateway urls` prints (GATEWAY_BASE_URL); None: serve's default."""
    phantombuster_api_key: str | None = None
    """Lets the gateway fetch a run's result object when the webhook lacks it."""
    phantombuster_api_base: str = "https://api.phantombuster.com/api/v2"
    phantombuster_result_hosts: tuple[str, ...] = DEFAULT_RESULT_HOSTS
    """Hosts a result file (`jsonUrl`) may be downloaded from; any other URL is never fetched."""
    phantombuster_fetch_deadline_s: float = 30.0
    """Total time a delivery's result fetch may take, every attempt and hop included.

    Per-phase timeouts alone let a host dripping a byte at a time hold a webhook.
    """
    phantombuster_max_result_bytes: int = 20 * 1024 * 1024
    """Largest result object or file downloaded."""
    max_body_bytes: int = 1024 * 1024
    """Largest accepted webhook body; larger ones get 413 and are recorded."""
    max_body_bytes_lemlist: int | None = None
    """lemlist's own body limit; None: `max_body_bytes`."""
    max_body_bytes_postmark: int | None = None
    """Postmark's own body limit; None: `max_body_bytes`."""
    max_body_bytes_phantombuster: int | None = None
    """PhantomBuster's own body limit; None: 16 MiB (or `max_body_bytes` when larger).

    A run's inline result object can pass 1 MiB, and a 413 would lose its rows.
    """
    max_connections: int = 1000
    """Open connections per server process before new requests get 503."""
    body_read_timeout_s: float = 30.0
    """A webhook body that takes longer to arrive gets 408 (slow-client protection)."""
    log_format: Literal["json", "console"] = "json"
    pool_max_size: int = 20
    """The original design's pool: at most 20 connections..."""
    pool_idle_s: float = 30.0
    """...closed after 30 s idle..."""
    connect_timeout_s: float = 5.0
    """...and 5 s to connect."""
    acquire_timeout_s: float = 5.0
    """How long a request waits for a pooled connection before answering 503."""
    command_timeout_s: float | None = 30.0
    """How long one statement of a request may run before it answers 503; None: no limit."""
    slow_query_ms: float = 100.0
    """Statements slower than this are logged at debug level."""
    writers: int = 1
    """Group-commit writer tasks per worker: one keeps batches large (two halve them)."""
    linger_ms: int = 1
    """How long a writer waits for a batch as large as recent ones (0: never waits)."""
    batch_max: int = 256
    """Most deliveries committed in one transaction."""
    queue_max: int = 4096
    """Deliveries waiting for a writer before new ones get 503 (back-pressure)."""
    metrics_dir: Path | None = None
    """PROMETHEUS_MULTIPROC_DIR: where the workers of one `gateway serve` share their metrics."""

    def body_limit(self, provider: str) -> int:
        """The largest body accepted from `provider`."""
        own: int | None = getattr(self, f"max_body_bytes_{provider}", None)
        if own is not None:
            return own
        if provider == "phantombuster":
            return max(PHANTOMBUSTER_DEFAULT_MAX_BODY_BYTES, self.max_body_bytes)
        return self.max_body_bytes

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every `GATEWAY_*`, `DATABASE_URL` and `PHANTOMBUSTER_*` variable."""
        env = os.environ if environ is None else environ
        secrets: dict[str, tuple[str, ...]] = {}
        for provider in PROVIDERS:
            raw = env.get(f"GATEWAY_SECRET_{provider.upper()}", "")
            values = tuple(s.strip() for s in raw.split(",") if s.strip())
            if values:
                secrets[provider] = values
        hosts = tuple(
            h.strip().lower()
            for h in env.get("PHANTOMBUSTER_RESULT_HOSTS", ",".join(DEFAULT_RESULT_HOSTS)).split(
                ","
            )
            if h.strip()
        )
        api_keys = tuple(k.strip() for k in env.get("GATEWAY_API_KEY", "").split(",") if k.strip())
        log_format = env.get("GATEWAY_LOG_FORMAT") or ("console" if sys.stderr.isatty() else "json")
        if log_format not in ("json", "console"):
            raise SettingsError(f"GATEWAY_LOG_FORMAT must be json or console, not {log_format!r}")
        return cls(
            database_url=env.get("DATABASE_URL") or None,
            data_dir=Path(env.get("GATEWAY_DATA_DIR") or ".gateway"),
            secrets=secrets,
            api_keys=api_keys,
            api_reads_open=_boolean(env, "GATEWAY_API_READS_OPEN", default=True),
            base_url=env.get("GATEWAY_BASE_URL", "").strip() or None,
            phantombuster_api_key=env.get("PHANTOMBUSTER_API_KEY") or None,
            phantombuster_api_base=(
                env.get("PHANTOMBUSTER_API_BASE") or "https://api.phantombuster.com/api/v2"
            ).rstrip("/"),
            phantombuster_result_hosts=hosts,
            phantombuster_fetch_deadline_s=_positive_float(
                env, "PHANTOMBUSTER_FETCH_DEADLINE_S", 30.0
            ),
            max_body_bytes=_positive_int(env, "GATEWAY_MAX_BODY_BYTES", 1024 * 1024),
            max_body_bytes_lemlist=_optional_positive_int(env, "GATEWAY_MAX_BODY_BYTES_LEMLIST"),
            max_body_bytes_postmark=_optional_positive_int(env, "GATEWAY_MAX_BODY_BYTES_POSTMARK"),
            max_body_bytes_phantombuster=_optional_positive_int(
                env, "GATEWAY_MAX_BODY_BYTES_PHANTOMBUSTER"
            ),
            max_connections=_positive_int(env, "GATEWAY_MAX_CONNECTIONS", 1000),
            body_read_timeout_s=_positive_int(env, "GATEWAY_BODY_READ_TIMEOUT_S", 30),
            writers=_positive_int(env, "GATEWAY_INGEST_WRITERS", 1),
            linger_ms=_nonnegative_int(env, "GATEWAY_INGEST_LINGER_MS", 1),
            batch_max=_positive_int(env, "GATEWAY_INGEST_BATCH_MAX", 256),
            queue_max=_positive_int(env, "GATEWAY_INGEST_QUEUE_MAX", 4096),
            log_format=log_format,  # type: ignore[arg-type]  # checked just above
            metrics_dir=Path(env["PROMETHEUS_MULTIPROC_DIR"])
            if env.get("PROMETHEUS_MULTIPROC_DIR")
            else None,
        )


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    value = _optional_int(env, name, minimum=1)
    return default if value is None else value


def _nonnegative_int(env: Mapping[str, str], name: str, default: int) -> int:
    value = _optional_int(env, name, minimum=0)
    return default if value is None else value


def _optional_positive_int(env: Mapping[str, str], name: str) -> int | None:
    return _optional_int(env, name, minimum=1)


def _optional_int(env: Mapping[str, str], name: str, *, minimum: int) -> int | None:
    """A whole number of at least `minimum` from the environment; None when unset."""
    raw = env.get(name)
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        word = "positive" if minimum == 1 else f"at least {minimum}"
        raise SettingsError(f"{name} must be {word}, not {value}")
    return value


def _positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds, not {raw!r}") from None
    if not 0 < value < float("inf"):
        raise SettingsError(f"{name} must be positive, not {raw}")
    return value


_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _boolean(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in _BOOLEANS:
        raise SettingsError(f"{name} must be true or false, not {env[name]!r}")
    return _BOOLEANS[raw]
