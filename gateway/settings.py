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

PROVIDERS: tuple[str, ...] = ("lemlist", "postmark", "phantombuster")

DEFAULT_RESULT_HOSTS: tuple[str, ...] = (
    "phantombuster.s3.amazonaws.com",
    "cache1.phantombooster.com",
)


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
    phantombuster_timeout_s: float = 10.0
    """Total time one result fetch may take, retries included."""
    phantombuster_max_result_bytes: int = 20 * 1024 * 1024
    """Largest result object or file downloaded."""
    max_body_bytes: int = 1024 * 1024
    """Largest accepted webhook body; larger ones get 413 and are recorded."""
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
    command_timeout_s: float = 30.0
    """How long one statement may run before the request answers 503."""
    slow_query_ms: float = 100.0
    """Statements slower than this are logged at debug level."""
    writers: int = 2
    """Group-commit writer tasks: one commits while the next gathers its batch."""
    batch_max: int = 256
    """Most deliveries committed in one transaction."""
    queue_max: int = 4096
    """Deliveries waiting for a writer before new ones get 503 (back-pressure)."""
    metrics_dir: Path | None = None
    """PROMETHEUS_MULTIPROC_DIR: where the workers of one `gateway serve` share their metrics."""

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
            max_body_bytes=_positive_int(env, "GATEWAY_MAX_BODY_BYTES", 1024 * 1024),
            body_read_timeout_s=_positive_int(env, "GATEWAY_BODY_READ_TIMEOUT_S", 30),
            writers=_positive_int(env, "GATEWAY_INGEST_WRITERS", 2),
            batch_max=_positive_int(env, "GATEWAY_INGEST_BATCH_MAX", 256),
            queue_max=_positive_int(env, "GATEWAY_INGEST_QUEUE_MAX", 4096),
            log_format=log_format,  # type: ignore[arg-type]  # checked just above
            metrics_dir=Path(env["PROMETHEUS_MULTIPROC_DIR"])
            if env.get("PROMETHEUS_MULTIPROC_DIR")
            else None,
        )


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}") from None
    if value <= 0:
        raise SettingsError(f"{name} must be positive, not {value}")
    return value


_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _boolean(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in _BOOLEANS:
        raise SettingsError(f"{name} must be true or false, not {env[name]!r}")
    return _BOOLEANS[raw]
