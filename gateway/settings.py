"""All configuration: one frozen Struct, read from the environment in one place and passed in.

Each field says what it is in its docstring, and its default is the field's own,
stated nowhere else. Its environment variable is its name in capitals after
`GATEWAY_` (`max_connections`: GATEWAY_MAX_CONNECTIONS), except where the
contract (CONTRACT.md §2) names it otherwise: such a field carries its
variable's name, and the reason, beside it. `from_env` reads only the variables
that are set (an empty one counts as unset) and checks each against its
field's type. Nothing reads `os.environ` at import time; tests build their own
Settings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal, get_origin

import msgspec

from providers.vocabulary import PROVIDERS

#: A count that must be at least 1.
Positive = Annotated[int, msgspec.Meta(ge=1)]
#: A time in seconds: more than nothing, at most a day (anything longer is a typo).
Seconds = Annotated[float, msgspec.Meta(gt=0, le=86_400)]

#: PhantomBuster's default body limit: a run's inline result object can be large.
PHANTOMBUSTER_DEFAULT_MAX_BODY_BYTES: Final = 16 * 1024 * 1024


class SettingsError(ValueError):
    """An environment variable holds a value the gateway cannot use."""


def _variable(field: str) -> str:
    """A field's environment variable, unless it names its own: GATEWAY_<FIELD>."""
    return f"GATEWAY_{field.upper()}"


class Settings(msgspec.Struct, frozen=True, kw_only=True, rename=_variable):
    """The gateway's configuration; each field's `encode_name` is its environment variable."""

    database_url: str | None = msgspec.field(default=None, name="DATABASE_URL")
    """PostgreSQL URL; None starts the embedded PostgreSQL under `data_dir`.

    DATABASE_URL (contract): the name hosts and PostgreSQL tools already set.
    """
    data_dir: Path = Path(".gateway")
    """Where the embedded PostgreSQL, generated secrets and the engagement lists live."""
    secret_lemlist: tuple[str, ...] = ()
    """lemlist's webhook secrets (several for rotation); none: one is generated under data_dir."""
    secret_postmark: tuple[str, ...] = ()
    """Postmark's webhook secrets (several for rotation); none: one is generated under data_dir."""
    secret_phantombuster: tuple[str, ...] = ()
    """PhantomBuster's webhook secrets (several for rotation); none: one is generated."""
    api_keys: tuple[str, ...] = msgspec.field(default=(), name="GATEWAY_API_KEY")
    """Keys accepted by the management API (several for rotation); none: one is generated.

    GATEWAY_API_KEY (contract): the variable names the key, the field holds every accepted one.
    """
    api_reads_open: bool = True
    """Whether `GET /api/…` answers without an API key; writes always need one."""
    base_url: str | None = None
    """The public base URL that `gateway urls` and the console print; None: serve's default."""
    phantombuster_api_key: str | None = msgspec.field(default=None, name="PHANTOMBUSTER_API_KEY")
    """Lets the gateway fetch a run's result object when the webhook lacks it.

    PHANTOMBUSTER_* (contract): PhantomBuster's own settings carry its name, not the gateway's.
    """
    phantombuster_api_base: str = msgspec.field(
        default="https://api.phantombuster.com/api/v2", name="PHANTOMBUSTER_API_BASE"
    )
    """The PhantomBuster API's base URL (PHANTOMBUSTER_* as above)."""
    phantombuster_result_hosts: tuple[str, ...] = msgspec.field(
        default=("phantombuster.s3.amazonaws.com", "cache1.phantombooster.com"),
        name="PHANTOMBUSTER_RESULT_HOSTS",
    )
    """Hosts a result file (`jsonUrl`) may be downloaded from; any other URL is never fetched.

    PhantomBuster's own storage hosts by default (PHANTOMBUSTER_* as above).
    """
    phantombuster_fetch_deadline_s: Seconds = msgspec.field(
        default=30.0, name="PHANTOMBUSTER_FETCH_DEADLINE_S"
    )
    """Total time a delivery's result fetch may take, every attempt and hop included.

    Per-phase timeouts alone let a host dripping a byte at a time hold a webhook
    (PHANTOMBUSTER_* as above).
    """
    phantombuster_max_result_bytes: Positive = 20 * 1024 * 1024
    """Largest result object or file downloaded."""
    max_body_bytes: Positive = 1024 * 1024
    """Largest accepted webhook body; larger ones get 413 and are recorded."""
    max_body_bytes_lemlist: Positive | None = None
    """lemlist's own body limit; None: `max_body_bytes`."""
    max_body_bytes_postmark: Positive | None = None
    """Postmark's own body limit; None: `max_body_bytes`."""
    max_body_bytes_phantombuster: Positive | None = None
    """PhantomBuster's own body limit; None: 16 MiB (or `max_body_bytes` when larger).

    A run's inline result object can pass 1 MiB, and a 413 would lose its rows.
    """
    max_connections: Positive = 1000
    """Open connections per server process before new requests get 503."""
    body_read_timeout_s: Seconds = 30.0
    """A webhook body that takes longer to arrive gets 408 (slow-client protection)."""
    log_format: Literal["json", "console"] | None = None
    """How log lines are written; None: console on a terminal, json otherwise."""
    pool_max_size: Positive = 20
    """The original design's pool: at most 20 connections..."""
    pool_idle_s: Seconds = 30.0
    """...closed after 30 s idle..."""
    connect_timeout_s: Seconds = 5.0
    """...and 5 s to connect."""
    acquire_timeout_s: Seconds = 5.0
    """How long a request waits for a pooled connection before answering 503."""
    command_timeout_s: Seconds | None = 30.0
    """How long one statement of a request may run before it answers 503; None: no limit."""
    slow_query_ms: Annotated[float, msgspec.Meta(ge=0)] = 100.0
    """Statements slower than this are logged at debug level."""
    ingest_writers: Positive = 1
    """Group-commit writer tasks per worker: one keeps batches large (two halve them)."""
    ingest_linger_ms: Annotated[int, msgspec.Meta(ge=0)] = 1
    """How long a writer waits for a batch as large as recent ones (0: never waits)."""
    ingest_batch_max: Positive = 256
    """Most deliveries committed in one transaction."""
    ingest_queue_max: Positive = 4096
    """Deliveries waiting for a writer before new ones get 503 (back-pressure)."""
    metrics_dir: Path | None = msgspec.field(default=None, name="PROMETHEUS_MULTIPROC_DIR")
    """Where the workers of one `gateway serve` share their metrics.

    PROMETHEUS_MULTIPROC_DIR: prometheus_client reads this very variable in each worker.
    """

    def body_limit(self, provider: str) -> int:
        """The largest body accepted from `provider`."""
        own: int | None = getattr(self, f"max_body_bytes_{provider}", None)
        if own is not None:
            return own
        if provider == "phantombuster":
            return max(PHANTOMBUSTER_DEFAULT_MAX_BODY_BYTES, self.max_body_bytes)
        return self.max_body_bytes

    def secrets(self) -> dict[str, tuple[str, ...]]:
        """The configured webhook secrets of each provider that has some."""
        configured = {p: getattr(self, f"secret_{p}") for p in PROVIDERS}
        return {provider: values for provider, values in configured.items() if values}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Every field whose variable is set; a value that does not fit is a SettingsError."""
        env = os.environ if environ is None else environ
        given: dict[str, Any] = {}
        for field in msgspec.structs.fields(cls):
            raw = env.get(field.encode_name, "").strip()
            if raw:
                given[field.encode_name] = _reading(field.encode_name, raw, field.type)
        try:
            return msgspec.convert(given, cls, strict=False, dec_hook=_path)
        except msgspec.ValidationError as exc:
            message, _, where = str(exc).rpartition(" - at `$.")
            name = where.rstrip("`")
            raise SettingsError(_invalid(name, env.get(name, ""), message)) from None


def setting(name: str) -> msgspec.structs.FieldInfo:
    """A field of Settings: its environment variable (`encode_name`) and its default."""
    [field] = [f for f in msgspec.structs.fields(Settings) if f.name == name]
    return field


_BOOLEANS: Final = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _reading(name: str, raw: str, type_: object) -> object:
    """A variable's text as its field takes it: lists comma-separated, booleans in words.

    Everything else is converted (and checked) by msgspec from the text itself.
    """
    if get_origin(type_) is tuple:
        return [item.strip() for item in raw.split(",") if item.strip()]
    if type_ is bool:
        if raw.lower() not in _BOOLEANS:
            raise SettingsError(_invalid(name, raw, "expected true or false"))
        return _BOOLEANS[raw.lower()]
    return raw


def _invalid(name: str, raw: str, message: str) -> str:
    return f"{name}={raw.strip()!r} is not valid: {message[:1].lower()}{message[1:]}"


def _path(type_: type, value: object) -> object:
    """msgspec's hook for the one type it does not convert itself."""
    if type_ is Path and isinstance(value, str):
        return Path(value)
    raise NotImplementedError
