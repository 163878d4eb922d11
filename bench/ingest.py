"""Ingestion throughput benchmark: run it through `bench/run`, which sets up wrk and a venv.

One run starts one embedded PostgreSQL (pgserver) and, against it:

1. pgbench with `bench/webhook.pgbench`, one transaction per webhook (raw
   delivery + event ON CONFLICT): the database's own limit on this machine;
2. per scenario (spread over 50 campaign instances or one hot instance; 1 or
   2 workers): fresh tables, `gateway serve`, a short warm-up, then wrk with
   `bench/mix.lua` for the measured run, sampling the workers' RSS;
3. after each scenario, a check that the database holds exactly the events
   the generated deliveries imply, delivery by delivery, that every
   acknowledged delivery is stored, and that the instance counters are exact.
   A fast run that loses or doubles events is a failure, not a result: any
   failed check makes the command exit 1.

The table goes to stdout and to bench/results/latest.md. Figures on a shared
machine are noisy: compare ratios measured in one run, not absolute figures
across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter, defaultdict
from contextlib import suppress
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

import httpx
import psutil
import psycopg

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
MIX_LUA = BENCH / "mix.lua"
PGBENCH_SCRIPT = BENCH / "webhook.pgbench"
RESULTS = BENCH / "results" / "latest.md"

PROVIDERS = ("lemlist", "postmark", "phantombuster")
#: Contacts in the generated traffic, shared out over the instances (mix.lua).
CONTACTS = 20_000
#: Events one new delivery must write: PhantomBuster runs carry 5 rows.
EVENTS_PER_DELIVERY = {"lemlist": 1, "postmark": 1, "phantombuster": 5}
PGBENCH_CLIENTS = 16
#: Targets of issue #6.
TARGET_RATIO, AIM_RATIO, TARGET_P99_MS, TARGET_RSS_MB, TARGET_HOT_SHARE = 1.0, 1.5, 50, 150, 0.8

#: The delivery token mix.lua puts in each provider's id field: (run, thread, n).
TOKEN_PATTERNS = {
    "lemlist": re.compile(r"act_(\d{4})(\d{4})(\d{9})"),
    "postmark": re.compile(r"(\d{8})-(\d{4})-4000-a000-(\d{12})"),
    "phantombuster": re.compile(r"(\d{4})(\d{4})(\d{9})"),
}
Token = tuple[int, int, int]


@dataclass(frozen=True)
class Scenario:
    """Where the events go (instances) and how many gateway workers take them."""

    name: str
    instances: int
    workers: int

    @property
    def label(self) -> str:
        return f"{self.name}, {self.workers} worker{'s' if self.workers > 1 else ''}"


SCENARIOS = (
    Scenario("spread", 50, 1),
    Scenario("spread", 50, 2),
    Scenario("hot", 1, 1),
    Scenario("hot", 1, 2),
)


@dataclass
class WrkRun:
    """One wrk run's summary (written by mix.lua's done()) and its acknowledgements."""

    run: int
    summary: dict[str, Any]
    acks: list[tuple[str, str, int]]

    def total(self, section: str) -> Counter[str]:
        """A per-thread counter section of the summary, summed over threads."""
        counts: Counter[str] = Counter()
        for thread in self.summary["threads"].values():
            counts.update({k: int(v) for k, v in (thread.get(section) or {}).items()})
        return counts

    def generated(self) -> dict[int, int]:
        """New deliveries generated per thread: tokens 1..n were sent (or were about to be)."""
        return {
            int(tid): sum(int(v) for v in thread["generated"].values())
            for tid, thread in self.summary["threads"].items()
        }

    @property
    def seconds(self) -> float:
        return float(self.summary["duration_us"]) / 1e6

    def errors(self) -> Counter[str]:
        """Socket errors (connect, read, write, timeout) as wrk counts them."""
        errs = self.summary.get("errors") or {}
        return Counter({k: int(v) for k, v in errs.items() if k != "status" and int(v)})


@dataclass
class Verification:
    """What the database holds after a scenario, and every discrepancy found."""

    problems: list[str] = field(default_factory=list)
    facts: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class Result:
    """One scenario's figures."""

    scenario: Scenario
    run: WrkRun
    peak_rss_mb: float
    verification: Verification
    probe: Probe

    @property
    def answered_200(self) -> int:
        return len(self.run.acks)

    @property
    def deliveries_per_s(self) -> float:
        return self.answered_200 / self.run.seconds

    @property
    def events_per_s(self) -> float:
        return sum(a[2] for a in self.run.acks) / self.run.seconds

    def latency_ms(self, percentile: str) -> float:
        return float(self.run.summary["latency_us"]["percentiles"][percentile]) / 1000


def main(argv: list[str] | None = None) -> int:
    """Run every scenario; exit 1 when any verification fails."""
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    print(f"work dir: {work}", flush=True)
    server, url = start_postgres(work)
    postgres_pid = int(server.get_pid())
    failed = True
    try:
        migrate(url)
        tps, pgbench_probe = run_pgbench(url, postgres_pid, args.duration, work)
        print(f"pgbench: {tps:,.0f} tps\n   {pgbench_probe.describe()}", flush=True)
        results = []
        for number, scenario in enumerate(selected(args), start=1):
            results.append(run_scenario(scenario, number, url, postgres_pid, work, args))
        failed = not all(r.verification.ok for r in results)
        command = argv if argv is not None else sys.argv[1:]
        report = render(results, tps, pgbench_probe, url, args, command)
        print("\n" + report)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(report)
        print(f"written to {RESULTS.relative_to(ROOT)}")
    finally:
        server.cleanup()
        if failed or args.keep:
            print(f"kept for inspection: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if failed:
        print("\nVERIFICATION FAILED: see the problems above", file=sys.stderr)
        return 1
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=30, help="seconds per run (default 30)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up seconds per scenario (5)")
    parser.add_argument("--quick", action="store_true", help="smoke check: 5 s runs, 1 s warm-up")
    parser.add_argument(
        "--only", choices=sorted({s.name for s in SCENARIOS}), help="run only these scenarios"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, database)")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup = 5, 1
    return args


def selected(args: argparse.Namespace) -> list[Scenario]:
    return [s for s in SCENARIOS if args.only in (None, s.name)]


# --- PostgreSQL -------------------------------------------------------------------------------


def start_postgres(work: Path) -> tuple[Any, str]:
    """The embedded server every scenario shares, as the gateway itself would start it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pgserver

        server = pgserver.get_server(  # type: ignore[attr-defined]  # re-exported, untyped
            work / "pgdata", cleanup_mode="stop"
        )
    return server, str(server.get_uri())


def migrate(url: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "gateway", "migrate"],
        env=gateway_env(url, Path("."), {}),
        check=True,
        capture_output=True,
    )


def pgbench_binary() -> str:
    """pgserver's own pgbench (same major version as the server), else one on PATH."""
    import pgserver

    own = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pgbench"
    found = str(own) if own.exists() else shutil.which("pgbench")
    if found is None:
        raise SystemExit("pgbench not found (neither in pgserver nor on PATH)")
    return found


def run_pgbench(url: str, postgres_pid: int, duration: int, work: Path) -> tuple[float, Probe]:
    """TPS of one transaction per webhook on the same schema (scenarios empty the tables)."""
    parts = urlsplit(url)
    host = parse_qs(parts.query)["host"][0]
    cmd = [
        pgbench_binary(),
        "-n",
        "-h",
        host,
        "-U",
        parts.username or "postgres",
        "-c",
        str(PGBENCH_CLIENTS),
        "-j",
        "2",
        "-T",
        str(duration),
        "-M",
        "prepared",
        "-f",
        str(PGBENCH_SCRIPT),
        parts.path.lstrip("/") or "postgres",
    ]
    print(f"pgbench: {shlex.join(cmd[1:])}", flush=True)
    with Probe(url, {"postgres": postgres_pid}) as probe:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    (work / "pgbench.log").write_text(done.stdout + done.stderr)
    match = re.search(r"tps = ([\d.]+) \(without initial connection time\)", done.stdout)
    if done.returncode != 0 or match is None:
        raise SystemExit(f"pgbench failed:\n{done.stdout}\n{done.stderr}")
    return float(match.group(1)), probe


def reset_database(url: str, instances: int) -> None:
    """Empty tables, then one template and `instances` instances mapped to the mix's keys."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE campaign_events, enrollment_event_firsts, campaign_enrollments,"
            " campaign_instances, campaign_templates, webhook_deliveries CASCADE"
        )
        conn.execute("CHECKPOINT")
        # The keys mix.lua derives from an instance number i (contact % instances).
        conn.execute(
            "WITH t AS (INSERT INTO campaign_templates (name, type)"
            "           VALUES ('bench', 'multi_channel') RETURNING id)"
            " INSERT INTO campaign_instances (template_id, name, status, provider_config)"
            " SELECT t.id, 'bench ' || i, 'active', jsonb_build_object("
            "   'lemlist_campaign_id', 'cam_bench_' || i,"
            "   'postmark_tag', 'bench-' || i,"
            "   'phantombuster_agent_id', (7318204659000000 + i)::text)"
            " FROM t, generate_series(0, %s - 1) AS i",
            (instances,),
        )
        # Statistics for the tables that hold data now. Analyzing the emptied ones
        # would record "0 rows" and steer the plans PL/pgSQL caches (contact
        # lookups in resolve_targets) to sequential scans of a table that then
        # grows for the whole run: a state a running database is never in.
        conn.execute("ANALYZE campaign_templates, campaign_instances")


# --- One scenario -----------------------------------------------------------------------------


def gateway_env(url: str, data_dir: Path, secrets_by_provider: dict[str, str]) -> dict[str, str]:
    """This process's environment without gateway settings, plus the benchmark's."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GATEWAY_", "PHANTOMBUSTER_")) and k != "DATABASE_URL"
    }
    env |= {"DATABASE_URL": url, "GATEWAY_DATA_DIR": str(data_dir), "GATEWAY_LOG_FORMAT": "json"}
    for provider, secret in secrets_by_provider.items():
        env[f"GATEWAY_SECRET_{provider.upper()}"] = secret
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def run_scenario(
    scenario: Scenario,
    number: int,
    url: str,
    postgres_pid: int,
    work: Path,
    args: argparse.Namespace,
) -> Result:
    """Fresh tables, a gateway, warm-up, measured run, verification."""
    print(f"\n== {scenario.label} ({scenario.instances} instances)", flush=True)
    here = work / f"{number}-{scenario.name}-{scenario.workers}w"
    here.mkdir()
    reset_database(url, scenario.instances)
    keys = {p: secrets.token_hex(16) for p in PROVIDERS}
    env = gateway_env(url, here / "data", keys)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve = [sys.executable, "-m", "gateway", "serve", "--port", str(port)]
    commits0, deadlocks0 = database_stats(url)
    with (here / "gateway.log").open("w") as log:
        proc = subprocess.Popen(
            [*serve, "--workers", str(scenario.workers)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_ready(base, proc, here / "gateway.log")
            sampler = RssSampler(proc.pid, scenario.workers)
            sampler.start()
            warmup = run_wrk(base, here, number * 2 - 1, scenario, keys, args, args.warmup)
            with Probe(url, {"postgres": postgres_pid, "gateway": proc.pid}) as probe:
                measured = run_wrk(base, here, number * 2, scenario, keys, args, args.duration)
            time.sleep(1)  # let requests in flight at the cutoff finish
            peak = sampler.stop()
        finally:
            stop(proc)
    commits1, deadlocks1 = database_stats(url)
    verification = verify(url, [warmup, measured], args.connections, scenario.instances)
    answered = len(warmup.acks) + len(measured.acks)
    # About: asyncpg's reset query on each pool release is a transaction too, and
    # a few of the benchmark's own queries are in the count.
    verification.facts["transactions per 200 answer"] = (
        commits1 - commits0 - probe.own_commits
    ) / max(answered, 1)
    verification.facts["deadlocks"] = deadlocks1 - deadlocks0
    result = Result(scenario, measured, peak, verification, probe)
    print(
        f"   {result.deliveries_per_s:,.0f} deliveries/s, {result.events_per_s:,.0f} events/s,"
        f" p50 {result.latency_ms('50'):.1f} ms, p99 {result.latency_ms('99'):.1f} ms,"
        f" peak RSS {peak:.0f} MB/worker",
        flush=True,
    )
    for line in [probe.describe(), *describe(verification)]:
        print(f"   {line}", flush=True)
    return result


def database_stats(url: str) -> tuple[int, int]:
    """Commits and deadlocks so far, once every other session has ended.

    Backends report their counts lazily (at exit at the latest), so this waits
    for the gateway's connections to close and lets their reports land.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and conn.execute(OTHER_SESSIONS_SQL).fetchone() != (0,):
            time.sleep(0.1)
        time.sleep(0.5)
        row = conn.execute(
            "SELECT xact_commit, deadlocks FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


OTHER_SESSIONS_SQL = (
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
)


def wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gateway exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"gateway not ready after {timeout_s}s:\n{log.read_text()}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM: uvicorn finishes the requests it holds, then exits."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class RssSampler:
    """Peak RSS per worker process: sampled during the run, and the kernel's high-water mark.

    With one worker uvicorn serves in the `gateway serve` process itself; with
    more, the workers are its spawned children.
    """

    def __init__(self, pid: int, workers: int) -> None:
        self._root = psutil.Process(pid)
        self._workers = workers
        self._peak: dict[int, int] = {}
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> float:
        """Stop sampling; the largest peak of any worker, in MB."""
        self._stopped.set()
        self._thread.join()
        self._sample(high_water=True)
        return max(self._peak.values(), default=0) / 2**20

    def _worker_processes(self) -> list[psutil.Process]:
        if self._workers == 1:
            return [self._root]
        return [p for p in self._root.children() if "spawn_main" in " ".join(p.cmdline())]

    def _sample(self, *, high_water: bool = False) -> None:
        for proc in self._worker_processes():
            try:
                rss = proc.memory_info().rss
                if high_water:
                    status = Path(f"/proc/{proc.pid}/status").read_text()
                    match = re.search(r"VmHWM:\s+(\d+) kB", status)
                    rss = max(rss, int(match.group(1)) * 1024 if match else 0)
            except (psutil.Error, OSError):
                continue
            self._peak[proc.pid] = max(self._peak.get(proc.pid, 0), rss)

    def _loop(self) -> None:
        while not self._stopped.wait(0.25):
            self._sample()


class Probe:
    """Where a measured run's time went: CPU per party, and what PostgreSQL sessions waited on.

    On a shared 2-core machine this tells a slow gateway from a busy neighbour,
    and lock waits from fsync waits. Processes are sampled every 0.1 s, so
    short-lived ones (pgbench's backends) count up to their last sample; the
    load generator is our waited-for child, its CPU comes from rusage.
    """

    def __init__(self, url: str, roots: dict[str, int]) -> None:
        self._url = url
        self._roots = roots
        self._samples = 0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._seen: dict[str, dict[int, float]] = {name: {} for name in roots}
        self.waits: Counter[str] = Counter()
        self.cpu: dict[str, float] = {}
        """Percent of one core per party; all cores together make `os.cpu_count() * 100`."""

    def __enter__(self) -> Probe:
        self._sample_cpu()
        self._baseline = {name: dict(pids) for name, pids in self._seen.items()}
        self._start = (time.monotonic(), psutil.cpu_times(), _child_cpu())
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopped.set()
        self._thread.join()
        self._sample_cpu()
        wall0, machine0, child0 = self._start
        wall = time.monotonic() - wall0
        machine1 = psutil.cpu_times()
        for name, pids in self._seen.items():
            used = sum(t - self._baseline[name].get(pid, 0.0) for pid, t in pids.items())
            self.cpu[name] = 100 * used / wall
        self.cpu["load generator"] = 100 * (_child_cpu() - child0) / wall
        idle = (machine1.idle + machine1.iowait - machine0.idle - machine0.iowait) / wall
        total = (sum(machine1) - sum(machine0)) / wall
        self.cpu["other"] = max(0.0, 100 * (total - idle) - sum(self.cpu.values()))
        self.cpu["idle"] = 100 * idle
        self.waits = Counter({k: v / max(self._samples, 1) for k, v in self.waits.items()})

    def _sample_cpu(self) -> None:
        for name, pid in self._roots.items():
            with suppress(psutil.Error):
                root = psutil.Process(pid)
                for proc in [root, *root.children(recursive=True)]:
                    with suppress(psutil.Error):
                        times = proc.cpu_times()
                        self._seen[name][proc.pid] = times.user + times.system

    def _loop(self) -> None:
        with psycopg.connect(self._url, autocommit=True) as conn:
            while not self._stopped.wait(0.1):
                self._sample_cpu()
                rows = conn.execute(WAITS_SQL).fetchall()
                self._samples += 1
                self.waits.update(row[0] for row in rows)

    def describe(self) -> str:
        cores = os.cpu_count() or 1
        cpu = ", ".join(f"{k} {v:.0f}" for k, v in self.cpu.items())
        waits = ", ".join(f"{k} {v:.1f}" for k, v in self.waits.most_common(5))
        return f"CPU % (of {cores * 100}): {cpu}; PostgreSQL sessions on average: {waits}"

    @property
    def own_commits(self) -> int:
        """Each wait sample is one autocommitted query: commits to leave out of the count."""
        return self._samples


#: What each busy client session is doing: on CPU, waiting (type:event), or idle
#: inside a transaction, i.e. waiting for the gateway's next statement.
WAITS_SQL = """
SELECT CASE WHEN state = 'idle in transaction' THEN 'idle in transaction'
            ELSE coalesce(wait_event_type || ':' || wait_event, 'on CPU') END
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
  AND state IN ('active', 'idle in transaction')
"""


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(
    base: str,
    here: Path,
    run: int,
    scenario: Scenario,
    keys: dict[str, str],
    args: argparse.Namespace,
    seconds: int,
) -> WrkRun:
    """One wrk run of mix.lua; returns its summary and acknowledgements."""
    out = here / f"wrk-{run}"
    out.mkdir()
    env = dict(os.environ) | {
        "BENCH_RUN": str(run),
        "BENCH_INSTANCES": str(scenario.instances),
        "BENCH_CONTACTS": str(CONTACTS),
        "BENCH_OUT": str(out),
    }
    env |= {f"BENCH_SECRET_{p.upper()}": keys[p] for p in PROVIDERS}
    cmd = ["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", f"{seconds}s"]
    cmd += ["--timeout", "10s", "--latency", "-s", str(MIX_LUA), base]
    with (out / "wrk.log").open("w") as log:
        subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
    summary = json.loads((out / "summary.json").read_text())
    acks = []
    for line in (out / "acks.txt").read_text().splitlines():
        delivery_id, status, events = line.split(" ")
        acks.append((delivery_id, status, int(events)))
    return WrkRun(run, summary, acks)


# --- Verification -----------------------------------------------------------------------------

DELIVERIES_SQL = """
SELECT d.id::text, d.provider, d.status, d.events_written, md5(d.body),
       CASE d.provider WHEN 'lemlist' THEN b ->> '_id'
                       WHEN 'postmark' THEN b ->> 'MessageID'
                       ELSE b ->> 'containerId' END,
       coalesce(b ->> 'RecordType', b ->> 'agentId')
FROM webhook_deliveries d, LATERAL (SELECT convert_from(d.body, 'UTF8')::jsonb AS b) j
"""
EVENTS_SQL = (
    "SELECT delivery_id::text, provider_event_id, enrollment_id IS NULL FROM campaign_events"
)
#: Instances whose counters differ from what their events and enrollments say.
COUNTERS_SQL = """
WITH enrolled AS (
    SELECT instance_id, count(*) AS n FROM campaign_enrollments GROUP BY instance_id
), firsts AS (
    SELECT e.instance_id,
           count(DISTINCT ev.enrollment_id) FILTER (WHERE ev.event_type = 'sent') AS sent,
           count(DISTINCT ev.enrollment_id) FILTER (WHERE ev.event_type = 'opened') AS opened,
           count(DISTINCT ev.enrollment_id) FILTER (WHERE ev.event_type = 'clicked') AS clicked,
           count(DISTINCT ev.enrollment_id) FILTER (WHERE ev.event_type = 'replied') AS replied
    FROM campaign_events ev JOIN campaign_enrollments e ON e.id = ev.enrollment_id
    GROUP BY e.instance_id
)
SELECT i.name,
       ARRAY[i.total_enrolled, i.total_sent, i.total_opened, i.total_clicked, i.total_replied],
       ARRAY[coalesce(en.n, 0), coalesce(f.sent, 0), coalesce(f.opened, 0),
             coalesce(f.clicked, 0), coalesce(f.replied, 0)]
FROM campaign_instances i
LEFT JOIN enrolled en ON en.instance_id = i.id
LEFT JOIN firsts f ON f.instance_id = i.id
"""
NEW = ("processed", "unmatched")


class Stored(NamedTuple):
    """One row of DELIVERIES_SQL."""

    id: str
    provider: str
    status: str
    written: int
    digest: str
    token: str | None
    detail: str | None
    """Postmark's RecordType or PhantomBuster's agentId: part of the event key."""


def verify(url: str, runs: list[WrkRun], connections: int, instances: int) -> Verification:
    """Compare the database with what the load generator sent and was told.

    Tolerances: at each wrk cutoff, up to one request per connection may have
    been generated but not sent, or committed without its answer arriving.
    """
    v = Verification()
    with psycopg.connect(url) as conn:
        deliveries = conn.execute(DELIVERIES_SQL).fetchall()
        events = conn.execute(EVENTS_SQL).fetchall()
        counters = conn.execute(COUNTERS_SQL).fetchall()
    generated = {r.run: r.generated() for r in runs}
    acks = [a for r in runs for a in r.acks]
    codes = sum((r.total("codes") for r in runs), Counter[str]())
    socket_errors = sum((r.errors() for r in runs), Counter[str]())
    slack = connections * len(runs) + codes.get("503", 0) + socket_errors.total()

    # Deliveries, grouped by the token of the generated delivery they carry.
    by_token: dict[Token, list[Stored]] = defaultdict(list)
    by_id: dict[str, tuple[str, int]] = {}
    problems: Counter[str] = Counter()
    failed = 0
    for row in deliveries:
        d = Stored(*row)
        by_id[d.id] = (d.status, d.written)
        if d.status == "failed" and not d.written:
            failed += 1  # kept raw for `gateway reprocess` when the answer was 503
            continue
        match = TOKEN_PATTERNS[d.provider].fullmatch(d.token or "")
        token = (int(match[1]), int(match[2]), int(match[3])) if match else None
        if token is None or not 1 <= token[2] <= generated.get(token[0], {}).get(token[1], 0):
            problems["stored delivery that the load generator never generated"] += 1
            continue
        by_token[token].append(d)
        if d.status not in (*NEW, "duplicate"):
            problems[f"delivery stored as {d.status!r}"] += 1

    keys_by_delivery: dict[str, list[str]] = defaultdict(list)
    unmatched = 0
    for delivery_id, key, is_unmatched in events:
        unmatched += is_unmatched
        if delivery_id not in by_id:
            problems["event whose delivery is not stored"] += 1
        keys_by_delivery[delivery_id].append(key)

    for stored in by_token.values():
        first = stored[0]
        expected = EVENTS_PER_DELIVERY[first.provider]
        if len({d.digest for d in stored}) != 1:
            problems["redelivery whose bytes differ from the original"] += 1
        keys = [k for d in stored for k in keys_by_delivery.get(d.id, [])]
        if len(keys) < expected:
            problems[f"{first.provider} delivery with events lost"] += 1
        elif len(keys) > expected:
            problems[f"{first.provider} delivery with events doubled"] += 1
        if sum(d.written for d in stored) != len(keys):
            problems["events_written differs from the events stored"] += 1
        if not all(key_fits(first, k) for k in keys):
            problems[f"{first.provider} event key not built from its delivery's ids"] += 1
        if any(d.status == "duplicate" and keys_by_delivery.get(d.id) for d in stored):
            problems["redelivery (answered duplicate) that wrote events"] += 1
    for delivery_id, status, written in acks:
        kept = by_id.get(delivery_id)
        if kept is None:
            problems["acknowledged (200) delivery not stored: LOST"] += 1
        elif kept != (status, written):
            problems["answer differs from the stored delivery's status or events"] += 1

    acked_new = sum(1 for _, status, _ in acks if status in NEW)
    stored_new = len(by_token)
    sent_new = sum(n for per_thread in generated.values() for n in per_thread.values())
    if stored_new < acked_new:
        problems["fewer new deliveries stored than acknowledged"] += 1
    if stored_new - acked_new > slack:
        problems[f"{stored_new - acked_new} new deliveries stored unanswered (> {slack})"] += 1
    if sent_new - stored_new > slack:
        problems[f"{sent_new - stored_new} generated deliveries not stored (> {slack})"] += 1
    if failed > codes.get("503", 0):
        problems["deliveries stored as 'failed' beyond the 503 answers"] += failed
    if unmatched:
        problems["events left unmatched although every key is mapped"] += unmatched
    wrong = [name for name, kept, actual in counters if kept != actual]
    if wrong:
        problems[f"instance counters wrong on {len(wrong)} of {len(counters)} instances"] += 1
    if len(counters) != instances:
        problems[f"{len(counters)} instances instead of {instances}"] += 1
    for code, n in codes.items():
        if code != "503":
            problems[f"HTTP {code} answers"] += n

    v.problems = [f"{what} (x{n})" for what, n in problems.items()]
    v.facts = {
        "new deliveries generated": sent_new,
        "new deliveries stored": stored_new,
        "new deliveries acknowledged": acked_new,
        "redeliveries stored": len(deliveries) - stored_new - failed,
        "events stored": len(events),
        "503 answers": codes.get("503", 0),
        "stored as failed": failed,
        "socket errors": socket_errors.total(),
        "instances with exact counters": len(counters) - len(wrong),
    }
    return v


def key_fits(delivery: Stored, key: str) -> bool:
    """The event's dedup key is built from its delivery's ids, as the README documents."""
    if delivery.provider == "lemlist":
        return key == delivery.token
    if delivery.provider == "postmark":
        return key.startswith(f"{delivery.detail}:{delivery.token}:")
    return key.startswith(f"{delivery.detail}:connect:")


def describe(v: Verification) -> list[str]:
    facts = ", ".join(
        f"{k} {n:,.2f}" if isinstance(n, float) else f"{k} {n:,}" for k, n in v.facts.items()
    )
    if v.ok:
        return [f"verification OK: {facts}"]
    return ["VERIFICATION FAILED:", *(f"  - {p}" for p in v.problems), facts]


# --- Report -----------------------------------------------------------------------------------


def versions(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    found = {"Python": platform.python_version(), "PostgreSQL": row[0] if row else "?"}
    for package in ("litestar", "asyncpg", "uvicorn", "uvloop", "httptools", "msgspec", "pgserver"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "absent"
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    found["wrk"] = (wrk.stdout or wrk.stderr).split(" [")[0].removeprefix("wrk ").strip()
    git = ["git", "-C", str(ROOT), "describe", "--always", "--dirty"]
    described = subprocess.run(git, capture_output=True, text=True, check=False).stdout.strip()
    found["gateway"] = described or metadata.version("outreach-webhook-gateway")
    return found


def machine() -> str:
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    ram = psutil.virtual_memory().total / 2**30
    return f"{os.cpu_count()} cores ({model}), {ram:.0f} GiB RAM, Linux {platform.release()}"


def render(
    results: list[Result],
    tps: float,
    pgbench_probe: Probe,
    url: str,
    args: argparse.Namespace,
    argv: list[str],
) -> str:
    """The markdown table, the targets and the context needed to compare runs."""
    lines = [
        f"Ingestion throughput, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}:"
        f" wrk {args.connections} connections, {args.duration} s per scenario"
        f" after {args.warmup} s warm-up.",
        "",
        "| scenario | deliveries/s | events/s | p50 ms | p99 ms | peak RSS/worker MB"
        " | × pgbench | 503s | verified |",
        "|---|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.scenario.label} | {r.deliveries_per_s:,.0f} | {r.events_per_s:,.0f}"
            f" | {r.latency_ms('50'):.1f} | {r.latency_ms('99'):.1f} | {r.peak_rss_mb:.0f}"
            f" | {r.deliveries_per_s / tps:.2f} | {r.verification.facts['503 answers']}"
            f" | {'OK' if r.verification.ok else 'FAIL'} |"
        )
    lines += [
        "",
        f"pgbench limit: **{tps:,.0f} tps** (`bench/webhook.pgbench`: raw delivery + event"
        f" ON CONFLICT in one transaction, events unmatched, ~10% duplicate keys;"
        f" {PGBENCH_CLIENTS} clients, 2 threads, -M prepared, {args.duration} s)."
        f" {pgbench_probe.describe()}.",
        "",
        "Targets (issue #6):",
        "",
        *targets(results, tps, args.connections),
        "",
        f"Machine: {machine()}. PostgreSQL is the embedded pgserver, default settings,"
        " Unix socket; wrk, gateway and PostgreSQL share the machine.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in versions(url).items()) + ".",
        "",
        f"Command: `{shlex.join(['bench/run', *argv])}`",
        "",
        "Per scenario: where the time went during the measured run, and the verification"
        " (warm-up included):",
        "",
    ]
    for r in results:
        lines += [
            f"- {r.scenario.label}: {r.probe.describe()}.",
            "  " + "; ".join(describe(r.verification)),
        ]
    return "\n".join(lines) + "\n"


def targets(results: list[Result], tps: float, connections: int) -> list[str]:
    """One line per target of issue #6, met or not, with the figures behind it."""

    def verdict(ok: bool) -> str:
        return "met" if ok else "**not met**"

    ratios = {r.scenario.label: r.deliveries_per_s / tps for r in results}
    p99 = {r.scenario.label: r.latency_ms("99") for r in results}
    rss = {r.scenario.label: r.peak_rss_mb for r in results}
    lines = [
        f"- durable deliveries/s ≥ {TARGET_RATIO:.0f}× pgbench (aim {AIM_RATIO}×): "
        + ", ".join(f"{k} {v:.2f}×" for k, v in ratios.items())
        + f": {verdict(min(ratios.values()) >= TARGET_RATIO)}",
        f"- p99 ≤ {TARGET_P99_MS} ms at {connections} connections: "
        + ", ".join(f"{k} {v:.0f} ms" for k, v in p99.items())
        + f": {verdict(max(p99.values()) <= TARGET_P99_MS)}",
        f"- peak RSS ≤ {TARGET_RSS_MB} MB per worker: "
        + ", ".join(f"{k} {v:.0f} MB" for k, v in rss.items())
        + f": {verdict(max(rss.values()) <= TARGET_RSS_MB)}",
    ]
    spread = {r.scenario.workers: r for r in results if r.scenario.name == "spread"}
    shares = {
        r.scenario.workers: r.deliveries_per_s / spread[r.scenario.workers].deliveries_per_s
        for r in results
        if r.scenario.name == "hot" and r.scenario.workers in spread
    }
    if shares:
        lines.append(
            f"- hot campaign ≥ {TARGET_HOT_SHARE:.0%} of spread: "
            + ", ".join(f"{w} worker(s) {s:.0%}" for w, s in shares.items())
            + f": {verdict(min(shares.values()) >= TARGET_HOT_SHARE)}"
        )
    return lines


if __name__ == "__main__":
    sys.exit(main())
