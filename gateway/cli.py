"""The `gateway` command: serve, migrate, seed, db, urls, api-key, replay, export, reprocess, purge.

Every command that needs the database uses `--database-url` (env
DATABASE_URL) or, when none is given, starts the embedded PostgreSQL under
`--data-dir` (env GATEWAY_DATA_DIR), which stops again when the last gateway
process using it exits.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import errno
import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import BinaryIO, TypeVar
from urllib.parse import quote, urlsplit

import msgspec

from gateway.cli_errors import CliError, database_errors, file_errors, redact_url
from gateway.db.deliveries import DeliveryFilter
from gateway.db.embedded import start_embedded, supervise_embedded
from gateway.db.migrate import apply_migrations
from gateway.db.pool import Connection, Pool, connection, open_pool
from gateway.db.stats import database_stats, server_facts
from gateway.delivery import DELIVERY_STATUSES
from gateway.logs import configure_logging
from gateway.ops.retention import AGE_UNITS
from gateway.secrets import known_redactor, load_api_keys, load_secrets
from gateway.settings import Settings, SettingsError, setting
from providers.vocabulary import PROVIDERS

T = TypeVar("T")

#: Where `gateway serve` listens by default...
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8000
#: ...hence what `gateway urls` prints by default.
DEFAULT_BASE_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
DATABASE_URL, DATA_DIR, BASE_URL = (
    setting(name) for name in ("database_url", "data_dir", "base_url")
)


def _global_flags(*, defaults: bool) -> argparse.ArgumentParser:
    """--database-url and --data-dir, for the main parser or for a subcommand.

    A subcommand's parser leaves a flag it was not given unset (SUPPRESS), so
    that `gateway --database-url X db check` keeps X: with a default there,
    argparse would let the subcommand's default overwrite the global flag.
    """
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument(
        "--database-url",
        metavar="URL",
        default=None if defaults else argparse.SUPPRESS,
        help=f"PostgreSQL URL (env {DATABASE_URL.encode_name}); unset: the embedded PostgreSQL",
    )
    flags.add_argument(
        "--data-dir",
        metavar="DIR",
        default=None if defaults else argparse.SUPPRESS,
        help="where the embedded PostgreSQL and generated secrets live"
        f" (env {DATA_DIR.encode_name}; default {os.path.join('.', DATA_DIR.default)})",
    )
    return flags


def build_parser() -> argparse.ArgumentParser:
    """All commands and flags; each flag's help names its environment variable.

    --database-url and --data-dir work before or after the subcommand name.
    """
    common = _global_flags(defaults=False)
    parser = argparse.ArgumentParser(
        prog="gateway",
        description="Webhook ingestion gateway for lemlist, Postmark and PhantomBuster.",
        parents=[_global_flags(defaults=True)],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", parents=[common], help="run the HTTP server")
    serve.add_argument(
        "--host", default=DEFAULT_HOST, help="interface to listen on (default %(default)s)"
    )
    serve.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port to listen on (default %(default)s)"
    )
    serve.add_argument(
        "--workers", type=int, default=1, help="worker processes (default %(default)s)"
    )
    serve.set_defaults(run=cmd_serve)

    migrate = commands.add_parser("migrate", parents=[common], help="apply pending migrations")
    migrate.set_defaults(run=cmd_migrate)

    seed = commands.add_parser("seed", parents=[common], help="load the sample campaign data once")
    seed.set_defaults(run=cmd_seed)

    db = commands.add_parser("db", parents=[common], help="database checks")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    check = db_commands.add_parser("check", parents=[common], help="database, server time, version")
    check.set_defaults(run=cmd_db_check)
    stats = db_commands.add_parser(
        "stats", parents=[common], help="size, rows per table, connections"
    )
    stats.set_defaults(run=cmd_db_stats)

    urls = commands.add_parser(
        "urls",
        parents=[common],
        help="print each provider's webhook URL",
        description="Print each provider's webhook URL with its secret (the first of"
        " GATEWAY_SECRET_<PROVIDER>, else the one generated under --data-dir). The base URL is"
        " --base-url, else GATEWAY_BASE_URL, else gateway serve's default; which one is said"
        " on stderr.",
    )
    urls.add_argument(
        "--base-url",
        metavar="URL",
        help=f"the gateway's public base URL, as providers reach it (env {BASE_URL.encode_name};"
        f" default {DEFAULT_BASE_URL}, gateway serve's default --host and --port)",
    )
    urls.set_defaults(run=cmd_urls)

    api_key = commands.add_parser(
        "api-key",
        parents=[common],
        help="print the management API's key",
        description="Print the key that writes to /api need (Authorization: Bearer KEY or"
        " X-API-Key: KEY): the first of GATEWAY_API_KEY, else the one generated under"
        " --data-dir (generated now when there is none yet).",
    )
    api_key.set_defaults(run=cmd_api_key)

    replay = commands.add_parser(
        "replay",
        parents=[common],
        help="replay captured deliveries through the full pipeline",
        description="Replay captures (JSON Lines, one delivery a line) and *.json bodies"
        " (files, or directories named after their provider) through the full pipeline:"
        " straight into the database, or into a running gateway with --url. Exits 1 when"
        " anything was rejected, failed or could not be read.",
    )
    replay.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH", help="capture files, *.json bodies, dirs"
    )
    replay.add_argument(
        "--url",
        help="base URL of a running gateway to post to, with each provider's configured secret"
        " (env GATEWAY_SECRET_<PROVIDER>, else the one generated under --data-dir);"
        " unset: straight into the database",
    )
    replay.add_argument(
        "--provider",
        choices=PROVIDERS,
        help="provider of plain *.json bodies (default: their directory's name)",
    )
    replay.add_argument(
        "--concurrency",
        type=_positive,
        default=8,
        metavar="N",
        help="deliveries in flight at once (default %(default)s)",
    )
    replay.set_defaults(run=cmd_replay)

    export = commands.add_parser(
        "export",
        parents=[common],
        help="write stored deliveries out as a capture",
        description="Write stored deliveries, oldest first, in the capture format that"
        " `gateway replay` reads.",
    )
    _delivery_filters(export)
    export.add_argument(
        "--output",
        "-o",
        default="-",
        metavar="FILE",
        help="file to write, created owner-only: it holds contact e-mails (default -: standard"
        " output)",
    )
    export.set_defaults(run=cmd_export)

    reprocess = commands.add_parser(
        "reprocess",
        parents=[common],
        help="re-run normalization over stored raw deliveries",
        description="Parse stored raw deliveries again and write what they now yield:"
        " new events, unmatched events attached once their mapping exists, statuses"
        " recomputed. Idempotent: nothing doubles, a second run changes nothing.",
    )
    _delivery_filters(reprocess)
    reprocess.add_argument(
        "--batch-size",
        type=_positive,
        default=200,
        metavar="N",
        help="deliveries read and checked per page (default %(default)s)",
    )
    reprocess.add_argument(
        "--dry-run",
        action="store_true",
        help="report what would change, change nothing (a result missing from a pending"
        " PhantomBuster delivery is still fetched, with PHANTOMBUSTER_API_KEY)",
    )
    reprocess.set_defaults(run=cmd_reprocess)

    purge = commands.add_parser(
        "purge",
        parents=[common],
        help="delete raw deliveries older than an age (events are kept)",
        description="Retention: delete stored raw deliveries received before now minus"
        " --older-than, in short batches that run safely beside ingestion. Events are"
        " never touched. It shows how many deliveries it will delete and from when to"
        " when, then asks (on a terminal; --yes skips the question). With --archive, each"
        " batch is written to a capture file and flushed to disk before it is deleted.",
    )
    purge.add_argument(
        "--older-than",
        required=True,
        type=_age,
        metavar="AGE",
        help=f"age such as 90d, 12h or 2w; units: {AGE_UNITS}. `m`, months and years are"
        " refused: write 30min, or 180d",
    )
    purge.add_argument(
        "--batch-size",
        type=_positive,
        default=1000,
        metavar="N",
        help="deliveries deleted per transaction (default %(default)s)",
    )
    purge.add_argument(
        "--archive",
        type=Path,
        metavar="FILE",
        help="append purged deliveries to this capture (created owner-only: it holds contact"
        " e-mails)",
    )
    purge.add_argument("--dry-run", action="store_true", help="show what it would delete")
    purge.add_argument(
        "--yes",
        "-y",
        action="store_true",
        help="delete without asking (needed when standard input is not a terminal)",
    )
    purge.set_defaults(run=cmd_purge)

    engagement = commands.add_parser(
        "engagement", parents=[common], help="machine-open and machine-click rules"
    )
    engagement_commands = engagement.add_subparsers(
        dest="engagement_command", required=True, metavar="COMMAND"
    )
    refresh = engagement_commands.add_parser(
        "refresh",
        parents=[common],
        help="download Apple's iCloud Private Relay egress ranges",
        description="Download the iCloud Private Relay egress ranges that Apple publishes"
        " (Mail Privacy Protection fetches images through them) into"
        " --data-dir/engagement/, where the gateway reads them at startup: restart"
        " `gateway serve` afterwards. Events already stored keep their flags.",
    )
    refresh.add_argument(
        "--url",
        default=None,
        help="where to download the CSV from (default Apple's published list)",
    )
    refresh.set_defaults(run=cmd_engagement_refresh)

    erase = commands.add_parser(
        "erase",
        parents=[common],
        help="remove one person from every instance (GDPR erasure)",
        description="Remove one person from every instance: their enrollments (the"
        " instance counters follow), their events, and every stored raw delivery that"
        " mentions them (all stored bodies are read). Without --yes, only shows what it"
        " would remove.",
    )
    who = erase.add_mutually_exclusive_group(required=True)
    who.add_argument("--email", metavar="ADDRESS", help="the person's e-mail address (any case)")
    who.add_argument("--linkedin-url", metavar="URL", help="the person's LinkedIn profile URL")
    erase.add_argument("--yes", action="store_true", help="really erase (default: a dry run)")
    erase.set_defaults(run=cmd_erase)
    return parser


def _delivery_filters(parser: argparse.ArgumentParser) -> None:
    """--provider, --status, --from, --to: which stored deliveries a command goes through."""
    parser.add_argument(
        "--provider",
        action="append",
        choices=PROVIDERS,
        help="only this provider's deliveries (repeatable; default all)",
    )
    parser.add_argument(
        "--status",
        action="append",
        choices=DELIVERY_STATUSES,
        help="only deliveries with this status (repeatable; default all)",
    )
    parser.add_argument(
        "--from",
        dest="since",
        type=_timestamp,
        metavar="TIME",
        help="received at or after TIME (ISO 8601; UTC unless it has an offset)",
    )
    parser.add_argument(
        "--to",
        dest="until",
        type=_timestamp,
        metavar="TIME",
        help="received before TIME (ISO 8601; UTC unless it has an offset)",
    )


def _timestamp(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _age(text: str) -> timedelta:
    from gateway.ops.retention import parse_age

    try:
        return parse_age(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The environment's settings (read once, by Settings), with the command line's flags on top."""
    flags: dict[str, object] = {}
    if args.database_url:
        flags["database_url"] = args.database_url
    if args.data_dir:
        flags["data_dir"] = Path(args.data_dir)
    return msgspec.structs.replace(Settings.from_env(), **flags)


def database_url(settings: Settings, *, migrate: bool = True) -> str:
    """The configured database, or the embedded one started now; migrated unless asked not to.

    Any failure is one CliError saying which database (or data directory) and why.
    """
    url = settings.database_url
    if url is None:
        with file_errors(settings.data_dir, "start the embedded PostgreSQL under"):
            try:
                url = start_embedded(settings.data_dir)
            except subprocess.CalledProcessError as exc:
                raise CliError(
                    f"cannot start the embedded PostgreSQL under {settings.data_dir}:"
                    f" {exc.cmd[0] if exc.cmd else 'pg_ctl'} exited with {exc.returncode}"
                ) from exc
    elif not url.startswith(("postgresql://", "postgres://")):
        raise CliError(f"not a postgresql:// URL: {redact_url(url)} (--database-url, DATABASE_URL)")
    if migrate:
        with database_errors(settings):
            apply_migrations(url)
    return url


def on_pool(settings: Settings, url: str, work: Callable[[Pool], Awaitable[T]]) -> T:
    """`work` with a pool on `url`, run to its end; the pool is closed after it.

    The one way a command reaches its database: a failure to reach it, or a
    refusal, is one CliError saying which database and why.
    """

    async def run() -> T:
        async with open_pool(settings, url) as pool:
            return await work(pool)

    with database_errors(settings):
        return asyncio.run(run())


def on_connection(settings: Settings, url: str, work: Callable[[Connection], Awaitable[T]]) -> T:
    """`on_pool` for a command that needs one connection."""

    async def with_connection(pool: Pool) -> T:
        async with connection(pool, settings) as conn:
            return await work(conn)

    return on_pool(settings, url, with_connection)


def check_port(host: str, port: int) -> None:
    """Refuse, before anything is printed or started, a port that cannot be listened on.

    uvicorn would otherwise fail after the banner and the database start.
    SO_REUSEADDR as uvicorn sets it: a port held only by closed connections
    (TIME_WAIT) is free, one with a listener is not.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CliError(
                    f"port {port} on {host} is already in use (another gateway serve?);"
                    " choose another with --port"
                ) from exc
            raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from gateway.http_protocol import KEEP_ALIVE_S, GatewayHttpProtocol

    check_port(args.host, args.port)
    url = database_url(settings)
    if settings.database_url is None:
        supervise_embedded(settings.data_dir)
    secrets, generated = load_secrets(settings)
    api_keys, api_key_generated = load_api_keys(settings)
    base = f"http://{args.host}:{args.port}"
    print(f"Gateway listening on {base}  (health: {base}/healthz, API docs: {base}/schema)")
    print(f"Console: {base}/console")
    # Secrets go to a person at a terminal only, never into a log file.
    shown = sys.stdout.isatty()
    if generated and shown:
        print("Generated webhook secrets (kept owner-only under the data dir):")
        for line in webhook_urls(base, secrets.by_provider, only=generated):
            print(f"  {line}")
    elif generated:
        print(f"Generated webhook secrets for {', '.join(generated)} (not shown off a terminal)")
    if api_key_generated and shown:
        print("Generated API key for writes to /api (kept owner-only under the data dir):")
        print(f"  {api_keys.values[0]}")
    elif api_key_generated:
        print("Generated an API key for writes to /api (not shown off a terminal)")
    print("Webhook URLs with their secrets: gateway urls; the API key: gateway api-key")
    sys.stdout.flush()
    # Workers build their app from the environment: hand them what we resolved.
    metrics_dir = settings.metrics_dir or shared_metrics_dir(settings.data_dir)
    os.environ[setting("metrics_dir").encode_name] = str(metrics_dir)
    os.environ[DATABASE_URL.encode_name] = url
    os.environ[DATA_DIR.encode_name] = str(settings.data_dir)
    if settings.log_format is not None:
        os.environ[setting("log_format").encode_name] = settings.log_format
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal
    # against the handlers it found: let that re-raise end here, so that a clean
    # stop exits 0 and atexit stops the embedded PostgreSQL.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: None)
    uvicorn.run(
        "gateway.app:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=max(1, args.workers),
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        # Contract limits: request head within 10 s, idle keep-alive 5 s, connection cap.
        http=GatewayHttpProtocol,
        timeout_keep_alive=KEEP_ALIVE_S,
        limit_concurrency=settings.max_connections,
    )
    return 0


def shared_metrics_dir(data_dir: Path) -> Path:
    """A fresh directory where this server's workers share their metrics, removed at exit.

    One per `gateway serve` process (several may share a data dir); those left by
    servers that are gone are removed first. It must be in the environment
    before any worker imports prometheus_client.
    """
    base = data_dir / "metrics"
    if base.is_dir():
        for old in base.iterdir():
            if old.name.isdigit() and not _alive(int(old.name)):
                shutil.rmtree(old, ignore_errors=True)
    mine = base / str(os.getpid())
    shutil.rmtree(mine, ignore_errors=True)
    mine.mkdir(parents=True, mode=0o700)
    atexit.register(shutil.rmtree, mine, ignore_errors=True)
    return mine


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    url = database_url(settings, migrate=False)
    with database_errors(settings):
        applied = apply_migrations(url)
    print(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else ""))
    return 0


def cmd_seed(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.db.seed import SEED_COUNTS, load_seed

    loaded = on_connection(settings, database_url(settings), load_seed)
    counts = ", ".join(f"{n} {table}" for table, n in SEED_COUNTS.items())
    print(f"seeded: {counts}" if loaded else "sample data already present; nothing added")
    return 0


def cmd_db_check(args: argparse.Namespace, settings: Settings) -> int:
    facts = on_connection(settings, database_url(settings, migrate=False), server_facts)
    print(f"Database: {facts.database}")
    print(f"Server time: {facts.server_time.isoformat()}")
    print(f"PostgreSQL version: {facts.version}")
    return 0


def cmd_db_stats(args: argparse.Namespace, settings: Settings) -> int:
    stats = on_connection(settings, database_url(settings), database_stats)
    print(f"Database size: {stats.size}")
    print("Rows:")
    for table, count in stats.rows.items():
        print(f"  {table:<22} {count}")
    conns = stats.connections
    print(f"Connections: {conns.database} to this database, {conns.server} in all, max {conns.max}")
    return 0


def base_url(flag: str | None, settings: Settings) -> tuple[str, str]:
    """The public base URL for webhook URLs, and where it came from."""
    if flag:
        chosen, source = flag, "--base-url"
    elif settings.base_url:
        chosen, source = settings.base_url, BASE_URL.encode_name
    else:
        return DEFAULT_BASE_URL, (
            f"gateway serve's default --host and --port; set {BASE_URL.encode_name} to the URL"
            " providers reach"
        )
    if not chosen.startswith(("http://", "https://")) or not urlsplit(chosen).netloc:
        raise CliError(f"{source} is not an http(s) URL: {chosen!r}")
    return chosen.rstrip("/"), source


def cmd_urls(args: argparse.Namespace, settings: Settings) -> int:
    base, source = base_url(args.base_url, settings)
    with file_errors(settings.data_dir, "keep generated secrets under"):
        secrets, _ = load_secrets(settings)
    print(f"base URL {base} (from {source})", file=sys.stderr)
    for line in webhook_urls(base, secrets.by_provider):
        print(line)
    return 0


def cmd_api_key(args: argparse.Namespace, settings: Settings) -> int:
    with file_errors(settings.data_dir, "keep the generated API key under"):
        api_keys, _ = load_api_keys(settings)
    print(api_keys.values[0])
    return 0


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.ops import capture
    from gateway.ops.progress import Progress
    from gateway.ops.replay import replay_direct, replay_http

    with file_errors(settings.data_dir, "keep generated secrets under"):
        secrets, generated = load_secrets(settings)
    if args.url and generated:
        print(
            f"gateway replay: no secret configured for {', '.join(generated)}; one was generated"
            f" just now, which {args.url} will refuse unless it shares --data-dir",
            file=sys.stderr,
        )
    items = capture.read(args.paths, args.provider)
    progress = Progress("replay", capture.count(args.paths))
    started = time.monotonic()
    if args.url:
        how = f"to {args.url}"
        tally = asyncio.run(
            replay_http(items, args.url, secrets, concurrency=args.concurrency, progress=progress)
        )
    else:
        how = "into the database"
        url = database_url(settings)
        with database_errors(settings):  # replay_direct opens its pool as on_pool does
            tally = asyncio.run(
                replay_direct(
                    items, settings, url, secrets, concurrency=args.concurrency, progress=progress
                )
            )
    print(tally.render(how, time.monotonic() - started))
    return tally.exit_code


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.ops.export import export_deliveries

    url = database_url(settings)
    where, redactor = _filter(args), known_redactor(settings)

    def run(out: BinaryIO) -> int:
        return on_connection(
            settings, url, lambda conn: export_deliveries(conn, where, out, redactor=redactor)
        )

    if args.output == "-":
        count = run(sys.stdout.buffer)
        sys.stdout.buffer.flush()
    else:
        with file_errors(args.output, "write"):
            out = open_private(Path(args.output))
        with out, file_errors(args.output, "write"):
            count = run(out)
    print(f"exported {count} deliveries", file=sys.stderr)
    return 0


def open_private(path: Path, *, append: bool = False) -> BinaryIO:
    """A file readable by its owner only (0600), also when it existed before.

    Exports and purge archives hold contact e-mails and raw bodies. Only a
    regular file is chmod'ed: `-o /dev/stdout` must not change a terminal.
    """
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.fchmod(fd, 0o600)
        return os.fdopen(fd, "ab" if append else "wb")
    except BaseException:
        os.close(fd)
        raise


def cmd_reprocess(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.fetch import ResultFetcher
    from gateway.ops.progress import Progress
    from gateway.ops.reprocess import Report, Reprocessor

    url = database_url(settings)
    where = _filter(args)

    async def run(pool: Pool) -> Report:
        fetcher = ResultFetcher(settings)
        try:
            reprocessor = Reprocessor(
                pool, settings, fetcher, batch_size=args.batch_size, dry_run=args.dry_run
            )
            progress = Progress("reprocess", await reprocessor.count(where))
            return await reprocessor.run(where, progress)
        finally:
            await fetcher.aclose()

    started = time.monotonic()
    report = on_pool(settings, url, run)
    print(report.render(dry_run=args.dry_run, seconds=time.monotonic() - started))
    return report.exit_code


def cmd_purge(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.ops.progress import Progress
    from gateway.ops.retention import count_purgeable, purge_deliveries

    url = database_url(settings)
    cutoff = datetime.now(UTC) - args.older_than

    def purge(archive: BinaryIO | None, total: int) -> int:
        progress = Progress("purge", total)
        return on_pool(
            settings,
            url,
            lambda pool: purge_deliveries(
                pool,
                settings,
                cutoff,
                batch_size=args.batch_size,
                archive=archive,
                progress=progress,
            ),
        )

    found = on_pool(settings, url, lambda pool: count_purgeable(pool, settings, cutoff))
    span = (
        f" (received from {found.oldest:%Y-%m-%d %H:%M} to {found.newest:%Y-%m-%d %H:%M} UTC)"
        if found.oldest and found.newest
        else ""
    )
    what = f"{found.deliveries} deliveries received before {cutoff:%Y-%m-%d %H:%M:%S} UTC{span}"
    if args.dry_run or found.deliveries == 0:
        print(f"would delete {what}; events are kept")
        return 0
    print(f"will delete {what}; events are kept")
    if not args.yes and not _confirmed("Delete them?"):
        print("nothing deleted")
        return 1
    if args.archive is None:
        deleted = purge(None, found.deliveries)
    else:
        with file_errors(args.archive, "write"):
            archive = open_private(args.archive, append=True)
        with archive, file_errors(args.archive, "write"):
            deleted = purge(archive, found.deliveries)
    print(f"deleted {deleted} deliveries received before {cutoff:%Y-%m-%d %H:%M:%S} UTC")
    return 0


def _confirmed(question: str) -> bool:
    """Ask on the terminal; without one, refuse: nothing is deleted unasked."""
    if not sys.stdin.isatty():
        raise CliError("standard input is not a terminal to ask on: add --yes to delete")
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in {"y", "yes"}


def cmd_engagement_refresh(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.ops.engagement_refresh import (
        PRIVATE_RELAY_URL,
        RefreshError,
        refresh_private_relay,
    )

    url = args.url or PRIVATE_RELAY_URL
    try:
        done = asyncio.run(refresh_private_relay(settings.data_dir, url))
    except (RefreshError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"wrote {done.networks} networks ({done.ranges} published ranges) to {done.path}"
        + (f"; {done.skipped} unreadable lines skipped" if done.skipped else "")
    )
    print("restart `gateway serve` to use them for new events")
    return 0


def cmd_erase(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.ops.erase import Person, PersonError, erase, plan, render

    try:
        person = Person.of(args.email, args.linkedin_url)
    except PersonError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    async def run(conn: Connection) -> str:
        started = time.monotonic()
        found = await plan(conn, person)
        seconds = time.monotonic() - started
        if args.yes:
            await erase(conn, found)
        return render(found, seconds, erased=args.yes)

    print(on_connection(settings, database_url(settings), run))
    return 0


def _filter(args: argparse.Namespace) -> DeliveryFilter:
    return DeliveryFilter(
        providers=tuple(args.provider or PROVIDERS),
        statuses=tuple(args.status or DELIVERY_STATUSES),
        since=args.since,
        until=args.until,
    )


def webhook_urls(
    base: str, secrets: dict[str, tuple[str, ...]], only: Sequence[str] | None = None
) -> list[str]:
    """One line per provider: its URL with the (first) secret where it can carry it."""
    scheme, _, host = base.partition("://")
    lines = []
    for provider in PROVIDERS:
        if only is not None and provider not in only:
            continue
        secret = quote(secrets[provider][0], safe="")
        line = f"{provider:<14} {base}/webhooks/{provider}?token={secret}"
        if provider == "postmark":
            line += (
                f"\n{'':<14} {scheme}://postmark:{secret}@{host}/webhooks/postmark  (HTTP Basic)"
            )
        lines.append(line)
    return lines


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # A plain exit runs atexit handlers, which stop the embedded PostgreSQL.
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `gateway` console script.

    A failure the user can fix is one `error:` line on stderr and exit 1; the
    log says only what a user needs (warnings; `serve` logs its requests'
    outcomes), on stderr.
    """
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from_args(args)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.run is not cmd_serve:
        # The statement limit is for requests, which answer 503 rather than wait; a
        # command's statements may take minutes (erase reads every stored body).
        settings = msgspec.structs.replace(settings, command_timeout_s=None)
    configure_logging(
        settings.log_format, level=logging.INFO if args.run is cmd_serve else logging.WARNING
    )
    run: Callable[[argparse.Namespace, Settings], int] = args.run
    try:
        return run(args, settings)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader of our output went away (`gateway export | head`): not an error
        # to report, and Python must not complain while flushing stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
