"""Ingestion benchmark: run it through `bench/run`, which sets up wrk and a venv.

One run starts one embedded PostgreSQL (pgserver) and measures, in this order
(`--only` picks parts; docs/performance.md explains how to read the output):

1. pgbench: one webhook's write per transaction (raw delivery + event ON
   CONFLICT) on a fixed two-table schema, 32 clients: the database's limit;
2. nodb: the same HTTP stack without a database (bench/nodb_app.py: Litestar
   + msgspec on uvicorn, 2 workers) under the hot load: the stack's ceiling;
3. hot: `gateway serve --workers 2`, 64 connections, lemlist activities of
   ONE campaign, 5,000 leads enrolling as they first appear, 10% exact
   redeliveries;
4. spread: the same gateway, 60% lemlist / 30% Postmark / 10% PhantomBuster
   runs of 5 rows over 50 instances and 20,000 contacts;
5. growth: the hot load again, on a database holding 1,000,000 events and
   200,000 enrollments whose statistics were taken when it was nearly empty;
6. phantombuster: single run webhooks of 5,000, 10,000 and 20,000 rows into
   fresh instances, then the largest one's cumulative re-run (+100 rows).

Every gateway part runs in a fresh database cloned from a migrated template,
with a little history (200 enrollments) analyzed, and autovacuum off on its
tables (unless `--autovacuum`). After each, bench/verify.py checks the
database delivery by delivery; a failed check makes the command exit 1.
The report goes to stdout and to bench/results/latest.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import psycopg
from probes import (
    STATS_SETTLE_S,
    CpuSplit,
    PySpy,
    RssSampler,
    StatementStats,
    WaitSampler,
    Window,
    table_deltas,
    table_stats,
)
from report import render
from verify import (
    SnapshotChecker,
    Verification,
    WrkRun,
    pb_state,
    verify_counters,
    verify_deliveries,
    verify_identity,
    verify_pb_run,
)

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results" / "latest.md"
#: py-spy's collapsed stacks, one file per scenario (git-ignored).
PROFILES = BENCH / "results" / "py-spy"
PROVIDERS = ("lemlist", "postmark", "phantombuster")
PARTS = ("pgbench", "nodb", "hot", "spread", "growth", "phantombuster")
PGBENCH_CLIENTS = 32
TEMPLATE_DB = "bench_template"
#: Past campaigns of the history every scenario database starts with.
PAST_INSTANCES = 100
EVENTS_PER_ENROLLMENT = 5
#: "Nearly empty": the history analyzed before anything else is loaded.
NEARLY_EMPTY_ENROLLMENTS = 200
#: Bodies of a PhantomBuster run of 20,000 rows exceed the 1 MiB default.
MAX_BODY_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Shape:
    """What the load sends: how many instances and contacts, and the provider mix."""

    name: str
    instances: int
    contacts: int
    mix: str
    """Percent of new deliveries from lemlist, Postmark, PhantomBuster."""

    @property
    def describe(self) -> str:
        lemlist, postmark, phantombuster = self.mix.split(",")
        if self.instances == 1:
            return f"lemlist activities of one campaign, {self.contacts:,} leads"
        return (
            f"{lemlist}% lemlist / {postmark}% Postmark / {phantombuster}% PhantomBuster runs"
            f" of 5 rows, {self.instances} instances, {self.contacts:,} contacts"
        )


HOT = Shape("hot", 1, 5_000, "100,0,0")
SPREAD = Shape("spread", 50, 20_000, "60,30,10")


@dataclass
class PgbenchResult:
    tps: float
    p50_ms: float
    p99_ms: float
    failed: int
    window: Window
    verification: Verification


@dataclass
class LoadResult:
    """The no-database ceiling or one gateway scenario."""

    part: str
    label: str
    run: WrkRun
    window: Window
    rss_mb: float
    verification: Verification | None
    """None for the no-database ceiling: it stores nothing."""
    stored_before: dict[str, int] = field(default_factory=dict)
    """growth: rows already in the database when the load started."""
    preload_s: float = 0.0


@dataclass
class PhantomBusterRun:
    """One run webhook: its size, time and answer, and what the database holds after it."""

    label: str
    rows: int
    rerun: bool
    """The cumulative re-run of the largest run (its rows again + 100 new)."""
    seconds: float
    status_code: int
    answer: dict[str, Any]
    window: Window
    verification: Verification


@dataclass
class PhantomBusterResult:
    runs: list[PhantomBusterRun]
    rss_mb: float


@dataclass
class Results:
    """Everything one `bench/run` measured, for the report."""

    args: argparse.Namespace
    command: list[str]
    started: datetime
    settings: dict[str, str] = field(default_factory=dict)
    pgbench: PgbenchResult | None = None
    loads: dict[str, LoadResult] = field(default_factory=dict)
    phantombuster: PhantomBusterResult | None = None

    @property
    def ok(self) -> bool:
        checks = [r.verification for r in self.loads.values() if r.verification]
        if self.pgbench:
            checks.append(self.pgbench.verification)
        if self.phantombuster:
            checks += [r.verification for r in self.phantombuster.runs]
        return all(v.ok for v in checks)


# --- Command line ----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run", description=(__doc__ or "").split("\n\n", maxsplit=1)[0]
    )
    parser.add_argument("--duration", type=int, default=20, help="measured seconds per run (20)")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up seconds per run (5)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--workers", type=int, default=2, help="gateway and nodb workers (2)")
    parser.add_argument(
        "--only",
        type=parts_list,
        default=list(PARTS),
        help=f"comma-separated parts to run, of {','.join(PARTS)} (all)",
    )
    parser.add_argument(
        "--growth-enrollments",
        type=int,
        default=200_000,
        help=f"growth: enrollments stored before the load, {EVENTS_PER_ENROLLMENT} events each"
        " (200,000: 1,000,000 events)",
    )
    parser.add_argument(
        "--pb-rows",
        type=rows_list,
        default=[5_000, 10_000, 20_000],
        help="phantombuster: rows per run, comma-separated; the largest is re-run"
        " (5000,10000,20000)",
    )
    parser.add_argument(
        "--autovacuum",
        action="store_true",
        help="leave autovacuum on for the scenario tables (default: off, statistics stay as taken)",
    )
    parser.add_argument(
        "--py-spy",
        type=int,
        default=0,
        metavar="SECONDS",
        help="profile one gateway worker with py-spy for SECONDS of each measured run",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke check: 5 s runs, 2 s warm-up, growth and PhantomBuster sizes / 10",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, databases)")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup = 5, 2
        args.growth_enrollments //= 10
        args.pb_rows = [max(1, n // 10) for n in args.pb_rows]
    if "growth" in args.only and "hot" not in args.only:
        args.only.insert(args.only.index("growth"), "hot")  # growth is judged against hot
    if args.py_spy and args.py_spy > args.duration:
        parser.error("--py-spy SECONDS must not exceed --duration")
    return args


def parts_list(text: str) -> list[str]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        raise argparse.ArgumentTypeError(f"parts are {', '.join(PARTS)}; got {text!r}")
    return [p for p in PARTS if p in parts]


def rows_list(text: str) -> list[int]:
    try:
        rows = sorted(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 5000,10000: {text!r}") from None
    if not rows or rows[0] < 1:
        raise argparse.ArgumentTypeError(f"row counts must be positive: {text!r}")
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the selected parts, print and write the report; exit 1 when a check fails."""
    args = parse_args(argv)
    command = argv if argv is not None else sys.argv[1:]
    work = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    print(f"work dir: {work}", flush=True)
    results = Results(args, command, datetime.now(UTC))
    cluster = Cluster(work)
    finished = False
    try:
        results.settings = cluster.configure()
        cluster.create_template()
        bench = Bench(args, cluster, work)
        if "pgbench" in args.only:
            results.pgbench = bench.pgbench()
        if "nodb" in args.only:
            results.loads["nodb"] = bench.nodb()
        for part, shape in (("hot", HOT), ("spread", SPREAD), ("growth", HOT)):
            if part in args.only:
                results.loads[part] = bench.scenario(part, shape)
        if "phantombuster" in args.only:
            results.phantombuster = bench.phantombuster()
        report = render(results, cluster.versions(), cluster.machine())
        print("\n" + report)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(report)
        print(f"written to {RESULTS.relative_to(ROOT)}")
        finished = True
    finally:
        cluster.stop()
        if not (finished and results.ok) or args.keep:
            print(f"kept for inspection: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if not results.ok:
        print("\nVERIFICATION FAILED: see the problems above", file=sys.stderr)
        return 1
    return 0


# --- PostgreSQL -------------------------------------------------------------------------------


class Cluster:
    """The embedded PostgreSQL every part shares, one database per part."""

    def __init__(self, work: Path) -> None:
        self._pgdata = work / "pgdata"
        self.server = self._start()
        self.statements = False
        """Whether pg_stat_statements is loaded (else functions are timed)."""

    def _start(self) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            import pgserver

            return pgserver.get_server(  # type: ignore[attr-defined]  # re-exported, untyped
                self._pgdata, cleanup_mode="stop"
            )

    def postmaster(self) -> int:
        return int(self.server.get_pid())

    def url(self, database: str = "postgres") -> str:
        return str(self.server.get_uri(database))

    def configure(self) -> dict[str, str]:
        """Time PL/pgSQL functions; load pg_stat_statements when the server ships it.

        Everything else stays at PostgreSQL's defaults (synchronous_commit on).
        """
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET track_functions = 'pl'")
            conn.execute("SELECT pg_reload_conf()")
            shipped = conn.execute(
                "SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements'"
            ).fetchone()
            if shipped:
                conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
        if shipped:  # shared_preload_libraries takes a restart
            self.server.cleanup()
            self.server = self._start()
        with psycopg.connect(self.url(), autocommit=True) as conn:
            settings = {
                name: str(row[0])
                for name in (
                    "server_version",
                    "synchronous_commit",
                    "fsync",
                    "autovacuum",
                    "shared_buffers",
                    "max_wal_size",
                    "track_functions",
                    "shared_preload_libraries",
                )
                if (row := conn.execute(f"SHOW {name}").fetchone())
            }
        self.statements = "pg_stat_statements" in settings["shared_preload_libraries"]
        if not self.statements:
            print(
                "pg_stat_statements: not shipped with this PostgreSQL; timing PL/pgSQL functions"
                " (track_functions = pl) instead",
                flush=True,
            )
        return settings

    def create_template(self) -> None:
        """A migrated database the parts clone (CREATE DATABASE ... TEMPLATE)."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {TEMPLATE_DB}")
        subprocess.run(
            [sys.executable, "-m", "gateway", "migrate"],
            env=gateway_env(self.url(TEMPLATE_DB), Path("."), {}),
            check=True,
            capture_output=True,
        )

    def create_database(self, name: str, *, template: bool = True) -> str:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
            conn.execute(
                f"CREATE DATABASE {name}" + (f" TEMPLATE {TEMPLATE_DB}" if template else "")
            )
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def checkpoint(self) -> None:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute("CHECKPOINT")

    def binary(self, name: str) -> str:
        import pgserver

        return str(Path(pgserver.__file__).parent / "pginstall" / "bin" / name)

    def versions(self) -> dict[str, str]:
        from importlib import metadata

        with psycopg.connect(self.url()) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        found = {"Python": sys.version.split()[0], "PostgreSQL": row[0] if row else "?"}
        for package in ("litestar", "msgspec", "asyncpg", "uvicorn", "uvloop", "httptools"):
            try:
                found[package] = metadata.version(package)
            except metadata.PackageNotFoundError:
                found[package] = "absent"
        found["pgserver"] = metadata.version("pgserver")
        wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
        found["wrk"] = (wrk.stdout or wrk.stderr).split(" [")[0].removeprefix("wrk ").strip()
        pgbench = subprocess.run(
            [self.binary("pgbench"), "--version"], capture_output=True, text=True, check=False
        )
        found["pgbench"] = pgbench.stdout.split()[-1] if pgbench.stdout else "?"
        git = ["git", "-C", str(ROOT), "describe", "--always", "--dirty"]
        described = subprocess.run(git, capture_output=True, text=True, check=False).stdout.strip()
        found["gateway"] = described or metadata.version("outreach-webhook-gateway")
        return found

    def machine(self) -> str:
        import platform

        import psutil

        model = "?"
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        ram = psutil.virtual_memory().total / 2**30
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        return (
            f"{os.cpu_count()} cores ({model}), {ram:.0f} GiB RAM, Linux {platform.release()};"
            f" load average at the end {load}"
        )

    def stop(self) -> None:
        self.server.cleanup()


# --- Processes --------------------------------------------------------------------------------


def gateway_env(url: str, data_dir: Path, keys: dict[str, str]) -> dict[str, str]:
    """This process's environment without gateway settings, plus the benchmark's."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GATEWAY_", "PHANTOMBUSTER_")) and k != "DATABASE_URL"
    }
    env |= {"DATABASE_URL": url, "GATEWAY_DATA_DIR": str(data_dir), "GATEWAY_LOG_FORMAT": "json"}
    for provider, secret in keys.items():
        env[f"GATEWAY_SECRET_{provider.upper()}"] = secret
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """A server under test in its own session (its process group is its CPU party)."""

    def __init__(self, cmd: list[str], env: dict[str, str], log: Path, workers: int) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.workers = workers
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                [*cmd, "--port", str(self.port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, path: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(
                    f"server exited with {self.proc.returncode}:\n{self.log.read_text()}"
                )
            try:
                if httpx.get(f"{self.base}{path}", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"server not ready after {timeout_s}s:\n{self.log.read_text()}")

    def stop(self) -> None:
        """SIGTERM: uvicorn finishes the requests it holds, then exits; SIGKILL after 30 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


# --- The parts --------------------------------------------------------------------------------


class Bench:
    """Runs the parts against one cluster, sharing the run counter that tags deliveries."""

    def __init__(self, args: argparse.Namespace, cluster: Cluster, work: Path) -> None:
        self.args = args
        self.cluster = cluster
        self.work = work
        self._runs = 0

    # -- (a) pgbench

    def pgbench(self) -> PgbenchResult:
        """One webhook's write per transaction on the fixed reference schema."""
        print(f"\n== pgbench: {PGBENCH_CLIENTS} clients, {self.args.duration} s", flush=True)
        url = self.cluster.create_database("bench_pgbench", template=False)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute((BENCH / "webhook_schema.sql").read_text())
        body = (BENCH / "pgbench_body.json").read_text().strip()
        headers = json.dumps(
            {
                "host": "127.0.0.1:8000",
                "content-type": "application/json",
                "user-agent": "axios/1.7.7",
                "content-length": str(len(body)),
            }
        )
        metadata = json.dumps(
            {"campaign_id": "cam_R7vK2mXq9PdL4sWtA", "lead_email": "dana@northwind-example.com"}
        )
        parts = urlsplit(url)
        logs = self.work / "pgbench"
        logs.mkdir()
        cmd = [
            self.cluster.binary("pgbench"),
            "-n",
            "-h",
            parse_qs(parts.query)["host"][0],
            "-U",
            parts.username or "postgres",
            "-M",
            "prepared",
            "-c",
            str(PGBENCH_CLIENTS),
            "-j",
            "2",
            "-T",
            str(self.args.duration),
            "-l",
            "--sampling-rate=0.1",
            f"--log-prefix={logs / 'tx'}",
            "-f",
            str(BENCH / "webhook.pgbench"),
            "-D",
            f"body={body}",
            "-D",
            f"headers={headers}",
            "-D",
            f"metadata={metadata}",
            "-D",
            "occurred=2025-03-10T15:03:51.602Z",
            "bench_pgbench",
        ]
        self.cluster.checkpoint()
        cpu, waits = CpuSplit(self.cluster.postmaster(), None), WaitSampler(url)
        statements = StatementStats(url, statements=self.cluster.statements)
        statements.start()
        cpu.start()
        waits.start()
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        window = Window(cpu.stop(), waits.stop())
        window.statements = statements.stop() if self.cluster.statements else []
        (logs / "pgbench.out").write_text(done.stdout + done.stderr)
        tps = re.search(r"^tps = ([\d.]+) \(without initial connection time\)", done.stdout, re.M)
        processed = re.search(
            r"^number of transactions actually processed: (\d+)", done.stdout, re.M
        )
        failed = re.search(r"^number of failed transactions: (\d+)", done.stdout, re.M)
        if done.returncode != 0 or tps is None or processed is None:
            raise SystemExit(f"pgbench failed:\n{done.stdout}\n{done.stderr}")
        latencies = sorted(
            int(line.split()[2]) / 1000
            for log in logs.glob("tx*")
            for line in log.read_text().splitlines()
            if len(line.split()) >= 3
        )
        with psycopg.connect(url) as conn:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM raw_deliveries),"
                " (SELECT count(*) FROM campaign_events)"
            ).fetchone()
        raw, events = row if row else (0, 0)
        check = Verification()
        if not raw == events == int(processed[1]):
            check.problems.append(
                f"{processed[1]} transactions, {raw} raw rows, {events} events: want all equal"
            )
        check.facts = {"transactions": int(processed[1]), "raw rows": raw, "events": events}
        if not self.args.keep:
            self.cluster.drop_database("bench_pgbench")
        result = PgbenchResult(
            tps=float(tps[1]),
            p50_ms=percentile(latencies, 50),
            p99_ms=percentile(latencies, 99),
            failed=int(failed[1]) if failed else 0,
            window=window,
            verification=check,
        )
        print(f"   {result.tps:,.0f} tps, p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms")
        return result

    # -- (b) the no-database ceiling

    def nodb(self) -> LoadResult:
        """The HTTP stack alone (bench/nodb_app.py) under the hot load."""
        print(
            f"\n== nodb: the same HTTP stack, no database, {self.args.workers} workers", flush=True
        )
        here = self.work / "nodb"
        here.mkdir()
        keys = {p: secrets.token_hex(16) for p in PROVIDERS}
        env = dict(os.environ) | {f"BENCH_SECRET_{p.upper()}": k for p, k in keys.items()}
        cmd = [sys.executable, "-m", "uvicorn", "--factory", "nodb_app:create_app"]
        cmd += ["--app-dir", str(BENCH), "--host", "127.0.0.1", "--workers", str(self.args.workers)]
        cmd += [
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        server = Server(cmd, env, here / "server.log", self.args.workers)
        try:
            server.wait_ready("/healthz")
            rss = RssSampler(server.proc.pid, self.args.workers)
            rss.start()
            self.wrk(server.base, here, HOT, keys, self.args.warmup)
            cpu = CpuSplit(self.cluster.postmaster(), server.proc.pid)
            cpu.start()
            run = self.wrk(server.base, here, HOT, keys, self.args.duration)
            window = Window(cpu.stop())
            peak = rss.stop()
        finally:
            server.stop()
        result = LoadResult("nodb", "no-database ceiling", run, window, peak, None)
        print(
            f"   {run.deliveries_per_s:,.0f} req/s, p50 {run.latency_ms('50'):.1f} ms,"
            f" p99 {run.latency_ms('99'):.1f} ms"
        )
        return result

    # -- (c) the gateway under load

    def scenario(self, part: str, shape: Shape) -> LoadResult:
        """A fresh database, the gateway, a warm-up, the measured run, the verification."""
        print(f"\n== {part}: {shape.describe}", flush=True)
        here = self.work / part
        here.mkdir()
        url = self.cluster.create_database(part)
        instances = self.prepare(url, shape.instances)
        stored: dict[str, int] = {}
        preload_s = 0.0
        if part == "growth":
            t0 = time.monotonic()
            stored = self.preload(url, self.args.growth_enrollments)
            preload_s = time.monotonic() - t0
        self.cluster.checkpoint()
        since = database_now(url)
        keys = {p: secrets.token_hex(16) for p in PROVIDERS}
        server = self.gateway(url, here, keys)
        try:
            rss = RssSampler(server.proc.pid, self.args.workers)
            rss.start()
            snapshots = SnapshotChecker(url, instances)
            snapshots.start()
            warm = self.wrk(server.base, here, shape, keys, self.args.warmup)
            check = snapshots.stop()
            run, window = self.measured(server, url, here, shape, keys)
            peak = rss.stop()
            check.add(verify_counters(url, server.base, instances))
        finally:
            server.stop()
        check.add(verify_deliveries(url, [warm, run], self.args.connections, since))
        if shape.instances == 1:
            check.add(verify_identity(url, instances[0], since))
        if not self.args.keep:
            self.cluster.drop_database(part)
        label = {
            "hot": "hot: one campaign launching",
            "spread": "spread: many campaigns",
            "growth": "growth: hot, on a large database",
        }[part]
        result = LoadResult(part, label, run, window, peak, check, stored, preload_s)
        print(
            f"   {run.deliveries_per_s:,.0f} deliveries/s, {run.events_per_s:,.0f} events/s,"
            f" p50 {run.latency_ms('50'):.1f} ms, p99 {run.latency_ms('99'):.1f} ms,"
            f" peak RSS {peak:.0f} MB/worker",
            flush=True,
        )
        for line in check.describe():
            print(f"   {line}", flush=True)
        return result

    def measured(
        self, server: Server, url: str, here: Path, shape: Shape, keys: dict[str, str]
    ) -> tuple[WrkRun, Window]:
        """The measured wrk run with every probe around it, after a CHECKPOINT."""
        before = table_stats(url)
        self.cluster.checkpoint()
        statements = StatementStats(url, statements=self.cluster.statements)
        statements.start()
        cpu, waits = CpuSplit(self.cluster.postmaster(), server.proc.pid), WaitSampler(url)
        spy = None
        if self.args.py_spy:
            workers = RssSampler(server.proc.pid, server.workers).workers()
            if workers:
                PROFILES.mkdir(parents=True, exist_ok=True)
                spy = PySpy(workers[0].pid, self.args.py_spy, PROFILES / f"{here.name}.txt")
        cpu.start()
        waits.start()
        run = self.wrk(server.base, here, shape, keys, self.args.duration)
        window = Window(cpu.stop(), waits.stop())
        window.tables = table_deltas(before, table_stats(url))
        window.statements = statements.stop()
        window.profile = spy.wait() if spy else None
        return run, window

    def gateway(self, url: str, here: Path, keys: dict[str, str], **extra: str) -> Server:
        env = gateway_env(url, here / "data", keys) | extra
        cmd = [sys.executable, "-m", "gateway", "serve", "--host", "127.0.0.1"]
        cmd += ["--workers", str(self.args.workers)]
        server = Server(cmd, env, here / "gateway.log", self.args.workers)
        server.wait_ready("/readyz")
        return server

    def prepare(self, url: str, instances: int, *, agent_base: int = 7318204659000000) -> list[str]:
        """The template, the scenario's instances and a little history; statistics; autovacuum.

        Instance i is mapped to the keys mix.lua derives from it. The history
        (past campaigns, NEARLY_EMPTY_ENROLLMENTS enrollments) is analyzed
        with everything else: the statistics of a database that is nearly
        empty. Then autovacuum is switched off on every table unless
        --autovacuum, so those statistics stay as taken for the whole part.
        """
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute(
                "INSERT INTO campaign_templates (name, type) VALUES ('bench', 'multi_channel')"
                " RETURNING id"
            ).fetchone()
            template = row[0] if row else None
            ids = conn.execute(
                "INSERT INTO campaign_instances (template_id, name, status, provider_config)"
                " SELECT %s, 'bench ' || i, 'active', jsonb_build_object("
                "   'lemlist_campaign_id', 'cam_bench_' || i,"
                "   'postmark_tag', 'bench-' || i,"
                "   'phantombuster_agent_id', (%s + i)::text)"
                " FROM generate_series(0, %s - 1) AS i ORDER BY i RETURNING id::text",
                (template, agent_base, instances),
            ).fetchall()
            steps = preload_steps(conn)
            conn.execute(steps["instances"], {"template": template, "instances": PAST_INSTANCES})
        self.history(url, 1, NEARLY_EMPTY_ENROLLMENTS + 1)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE")
            if not self.args.autovacuum:
                tables = conn.execute(
                    "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = 'public'"
                ).fetchall()
                for (table,) in tables:
                    conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = off)")
        return [r[0] for r in ids]

    def history(self, url: str, lo: int, hi: int, *, progress: bool = False) -> None:
        """Enrollments lo..hi-1 of the past campaigns, with their events and raw deliveries."""
        chunk = 20_000
        with psycopg.connect(url, autocommit=True) as conn:
            steps = preload_steps(conn)
            for start in range(lo, hi, chunk):
                params = {"lo": start, "hi": min(start + chunk, hi), "instances": PAST_INSTANCES}
                for step in ("enrollments", "deliveries", "events"):
                    conn.execute(steps[step], params)
                if progress:
                    done = min(start + chunk, hi) - lo
                    print(
                        f"\r   preloading: {done:,} / {hi - lo:,} enrollments", end="", flush=True
                    )
        if progress:
            print(flush=True)

    def preload(self, url: str, enrollments: int) -> dict[str, int]:
        """Grow the nearly empty database to `enrollments` (x5 events), without ANALYZE."""
        self.history(url, NEARLY_EMPTY_ENROLLMENTS + 1, enrollments + 1, progress=True)
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM campaign_events),"
                " (SELECT count(*) FROM campaign_enrollments),"
                " (SELECT count(*) FROM webhook_deliveries),"
                " (SELECT reltuples::bigint FROM pg_class WHERE relname = 'campaign_events'),"
                " (SELECT reltuples::bigint FROM pg_class WHERE relname = 'campaign_enrollments')"
            ).fetchone()
        names = (
            "events",
            "enrollments",
            "raw deliveries",
            "events in the statistics",
            "enrollments in the statistics",
        )
        stored = {name: int(n) for name, n in zip(names, row or (), strict=True)}
        print(
            "   stored: "
            + ", ".join(f"{v:,} {k}" for k, v in stored.items())
            + " (no ANALYZE since the database was nearly empty)",
            flush=True,
        )
        return stored

    def wrk(
        self, base: str, here: Path, shape: Shape, keys: dict[str, str], seconds: int
    ) -> WrkRun:
        """One wrk run of mix.lua; returns its summary and acknowledgements."""
        self._runs += 1
        out = here / f"wrk-{self._runs}"
        out.mkdir()
        env = dict(os.environ) | {
            "BENCH_RUN": str(self._runs),
            "BENCH_INSTANCES": str(shape.instances),
            "BENCH_CONTACTS": str(shape.contacts),
            "BENCH_MIX": shape.mix,
            "BENCH_OUT": str(out),
        }
        env |= {f"BENCH_SECRET_{p.upper()}": keys[p] for p in PROVIDERS}
        cmd = ["wrk", "-t", str(self.args.threads), "-c", str(self.args.connections)]
        cmd += ["-d", f"{seconds}s", "--timeout", "10s", "--latency", "-s", str(BENCH / "mix.lua")]
        with (out / "wrk.log").open("w") as log:
            subprocess.run([*cmd, base], env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
        summary = json.loads((out / "summary.json").read_text())
        acks = []
        for line in (out / "acks.txt").read_text().splitlines():
            delivery_id, status, events = line.split(" ")
            acks.append((delivery_id, status, int(events)))
        return WrkRun(self._runs, summary, acks)

    # -- (d) PhantomBuster runs

    def phantombuster(self) -> PhantomBusterResult:
        """One run webhook per size into a fresh instance, then the largest one's re-run."""
        sizes = self.args.pb_rows
        print(f"\n== phantombuster: runs of {', '.join(f'{n:,}' for n in sizes)} rows", flush=True)
        here = self.work / "phantombuster"
        here.mkdir()
        url = self.cluster.create_database("phantombuster")
        agent_base = 7318204660000000
        instances = self.prepare(url, len(sizes) + 1, agent_base=agent_base)
        self.cluster.checkpoint()
        keys = {p: secrets.token_hex(16) for p in PROVIDERS}
        limits = {
            "GATEWAY_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
            "GATEWAY_MAX_BODY_BYTES_PHANTOMBUSTER": str(MAX_BODY_BYTES),
        }
        server = self.gateway(url, here, keys, **limits)
        runs = []
        try:
            rss = RssSampler(server.proc.pid, self.args.workers)
            rss.start()
            client = httpx.Client(base_url=server.base, timeout=300)
            token = {"token": keys["phantombuster"]}
            # Warm both workers' connections with small runs into the last instance.
            agent = str(agent_base + len(sizes))
            for i in range(2 * self.args.workers):
                rows = pb_rows(f"warm{i}", 0, 10)
                client.post("/webhooks/phantombuster", params=token, content=pb_body(agent, rows))
            plan = [(i, n, 0) for i, n in enumerate(sizes)] + [(len(sizes) - 1, sizes[-1], 100)]
            settle = STATS_SETTLE_S  # for the warm-up runs' statistics
            for i, n, new in plan:
                instance = instances[i]
                runs.append(
                    self.pb_run(
                        client, token, url, server, instance, agent_base + i, n, new, settle
                    )
                )
                settle = 1.0  # since the last reading, only this harness's closed connections

            client.close()
            peak = rss.stop()
        finally:
            server.stop()
        if not self.args.keep:
            self.cluster.drop_database("phantombuster")
        return PhantomBusterResult(runs, peak)

    def pb_run(
        self,
        client: httpx.Client,
        token: dict[str, str],
        url: str,
        server: Server,
        instance: str,
        agent: int,
        rows: int,
        new: int,
        settle: float,
    ) -> PhantomBusterRun:
        """One run webhook of `rows` + `new` rows (a re-run when `new`): time, answer, rows."""
        body = pb_body(str(agent), pb_rows(str(agent), 0, rows + new))
        label = f"re-run: {rows:,} + {new} new rows" if new else f"{rows:,} rows"
        stored = pb_state(url, instance, str(agent))
        before = table_stats(url, settle)
        statements = StatementStats(url, statements=self.cluster.statements)
        statements.start()
        cpu = CpuSplit(self.cluster.postmaster(), server.proc.pid)
        cpu.start()
        t0 = time.perf_counter()
        answer = client.post("/webhooks/phantombuster", params=token, content=body)
        seconds = time.perf_counter() - t0
        window = Window(cpu.stop())
        window.tables = table_deltas(before, table_stats(url))
        window.statements = statements.stop()
        try:
            payload = answer.json()
        except ValueError:
            payload = {"body": answer.text[:200]}
        after = pb_state(url, instance, str(agent))
        check = verify_pb_run(stored, after, rows + new, answer.status_code, payload)
        run = PhantomBusterRun(
            label, rows + new, bool(new), seconds, answer.status_code, payload, window, check
        )
        print(
            f"   {label}: {seconds:.2f} s, HTTP {answer.status_code}"
            f" events {payload.get('events')} duplicates {payload.get('duplicates')}",
            flush=True,
        )
        for line in check.describe():
            print(f"   {line}", flush=True)
        return run


# --- Helpers ----------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of sorted values (nan when empty)."""
    if not values:
        return float("nan")
    return values[min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))]


def database_now(url: str) -> datetime:
    """The database's clock, a moment before the gateway starts writing."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT now() - interval '1 second'").fetchone()
    return row[0] if row else datetime.now(UTC) - timedelta(seconds=1)


_PRELOAD_STEPS: dict[str, str] = {}


def preload_steps(conn: psycopg.Connection) -> dict[str, str]:
    """bench/preload.sql by step; events carry campaign_key when the schema has that column."""
    if not _PRELOAD_STEPS:
        text = (BENCH / "preload.sql").read_text()
        _PRELOAD_STEPS.update(re.findall(r"-- step: (\w+)\n(.*?)(?=\n-- step: |\Z)", text, re.S))
    steps = dict(_PRELOAD_STEPS)
    has_key = conn.execute(
        "SELECT 1 FROM information_schema.columns"
        " WHERE table_name = 'campaign_events' AND column_name = 'campaign_key'"
    ).fetchone()
    if has_key:
        steps["events"] = (
            steps["events"]
            .replace("/* campaign_key column */", ", campaign_key")
            .replace(
                "/* campaign_key value */",
                ", CASE e.provider WHEN 'lemlist' THEN 'cam_past_' || n %% %(instances)s"
                " WHEN 'postmark' THEN 'past-' || n %% %(instances)s"
                " ELSE (7318204650000000 + n %% %(instances)s)::text END",
            )
        )
    return steps


PB_ROW_MESSAGE = (
    "Hi, I work with operations leaders on fulfilment throughput and would love to connect. - Alex"
)


def pb_rows(tag: str, start: int, count: int) -> list[dict[str, str]]:
    """Auto Connect result rows; row i is always the same person at the same time."""
    base = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)
    rows = []
    for i in range(start, start + count):
        profile = f"https://www.linkedin.com/in/pb-{tag}-{i}/"
        rows.append(
            {
                "linkedinProfileUrl": profile,
                "profileUrl": profile,
                "firstName": "Lead",
                "lastName": f"Number {i}",
                "message": PB_ROW_MESSAGE,
                "timestamp": (base + timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
            }
        )
    return rows


def pb_body(agent: str, rows: list[dict[str, str]]) -> bytes:
    """An end-of-run webhook carrying its result inline, as PhantomBuster posts it."""
    return json.dumps(
        {
            "agentId": agent,
            "agentName": "Bench - LinkedIn Auto Connect",
            "containerId": str(secrets.randbelow(10**16)),
            "script": "LinkedIn Auto Connect.js",
            "scriptOrg": "phantombuster",
            "branch": "master",
            "launchDuration": 3190,
            "runDuration": 914873,
            "exitCode": 0,
            "exitMessage": "finished",
            "resultObject": json.dumps(rows),
        }
    ).encode()


if __name__ == "__main__":
    sys.exit(main())
