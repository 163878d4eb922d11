"""Where a measured run's time goes: CPU per party, PostgreSQL waits, table scans, statements.

Each probe brackets one measured window (pgbench, the no-database ceiling or a
gateway scenario) and returns plain figures that bench/report.py prints:

- `CpuSplit`: cores used by PostgreSQL, the server under test (its process
  group), the load generator and everything else, and idle, from /proc (the
  method of shared/peers/cpusplit.py);
- `WaitSampler`: what PostgreSQL's client sessions were doing, sampled from
  pg_stat_activity every 0.1 s (on CPU, Lock:tuple, Lock:transactionid, ...);
- `table_stats`: pg_stat_user_tables counters of the write path's tables, to
  take deltas of sequential scans and rows they read;
- `StatementStats`: the top statements by total time from pg_stat_statements
  when the server can load it, else the top PL/pgSQL functions from
  pg_stat_user_functions (track_functions = pl);
- `RssSampler`: each worker's peak resident memory;
- `PySpy`: an optional py-spy profile of one worker.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg

TICK = os.sysconf("SC_CLK_TCK")
#: The tables a webhook writes or reads on its way to COMMIT (the contract's).
WRITE_PATH_TABLES = (
    "webhook_deliveries",
    "campaign_events",
    "campaign_enrollments",
    "campaign_instances",
)
#: Backends send their statistics at the end of a transaction at most once a
#: second; what is left pending when they go idle is sent after
#: PGSTAT_IDLE_INTERVAL (10 s). Wait that long before reading counters, so a
#: reading holds everything done before it and nothing after.
STATS_SETTLE_S = 11.0


# --- CPU ----------------------------------------------------------------------------------------


@dataclass
class CpuFigures:
    """Average cores used over a window, per party."""

    seconds: float
    cores: dict[str, float]
    """postgres, server, load generator, other, idle."""
    kernel_share: dict[str, float]
    """The kernel (stime) part of postgres's and the server's time."""


class _Proc:
    __slots__ = ("parent", "pgrp", "start", "stime", "utime")

    def __init__(self, parent: int, pgrp: int, utime: int, stime: int, start: str) -> None:
        self.parent, self.pgrp, self.utime, self.stime, self.start = (
            parent,
            pgrp,
            utime,
            stime,
            start,
        )


def _processes(postmaster: int) -> dict[int, _Proc]:
    """Every process's CPU ticks; for the postmaster also those of backends it reaped."""
    found: dict[int, _Proc] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            data = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        lp, rp = data.index("("), data.rindex(")")
        comm = data[lp + 1 : rp]
        f = data[rp + 2 :].split()
        # stat field N is f[N - 3]: ppid (4), pgrp (5), utime stime cutime cstime (14-17),
        # starttime (22)
        utime, stime = int(f[11]), int(f[12])
        if int(name) == postmaster and comm == "postgres":  # it reaps backends that exit
            utime, stime = utime + int(f[13]), stime + int(f[14])
        found[int(name)] = _Proc(int(f[1]), int(f[2]), utime, stime, f[19])
    return found


def _machine() -> list[int]:
    with open("/proc/stat") as fh:
        return [int(x) for x in fh.readline().split()[1:]]


def _reaped_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class CpuSplit:
    """Cores per party between `start()` and `stop()`.

    postgres: the benchmark's PostgreSQL, its postmaster and every child of it
    (plus backends it reaped; other clusters on a shared machine are "other");
    server: the process group of the server under test (started in its own
    session); load generator: children of this process reaped meanwhile (wrk
    or pgbench, waited for before `stop()`); other: the rest of the busy time
    (kernel threads, this harness); idle: idle + iowait of /proc/stat.
    Resolution is one clock tick per process.
    """

    def __init__(self, postmaster: int, server_pgid: int | None) -> None:
        self._postmaster = postmaster
        self._pgid = server_pgid

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._m0, self._c0 = _machine(), _reaped_children()
        self._p0 = _processes(self._postmaster)

    def stop(self) -> CpuFigures:
        m1, p1, c1 = _machine(), _processes(self._postmaster), _reaped_children()
        wall = time.monotonic() - self._t0
        ticks = {"postgres": 0, "server": 0}
        kernel = {"postgres": 0, "server": 0}
        for pid, proc in p1.items():
            before = self._p0.get(pid)
            utime, stime = proc.utime, proc.stime
            if before is not None and before.start == proc.start:
                utime, stime = utime - before.utime, stime - before.stime
            if self._postmaster in (pid, proc.parent):
                party = "postgres"
            elif self._pgid and proc.pgrp == self._pgid:
                party = "server"
            else:
                continue
            ticks[party] += max(utime + stime, 0)
            kernel[party] += max(stime, 0)
        delta = [b - a for a, b in zip(self._m0, m1, strict=True)]
        # /proc/stat: user nice system idle iowait irq softirq steal
        busy = sum(delta[:8]) - delta[3] - delta[4]
        cores = {party: t / TICK / wall for party, t in ticks.items()}
        cores["load generator"] = (c1 - self._c0) / wall
        cores["other"] = max(0.0, busy / TICK / wall - sum(cores.values()))
        cores["idle"] = (delta[3] + delta[4]) / TICK / wall
        share = {party: kernel[party] / t for party, t in ticks.items() if t}
        return CpuFigures(seconds=wall, cores=cores, kernel_share=share)


# --- PostgreSQL sessions ---------------------------------------------------------------------

#: What each busy client session of this database is doing: on CPU, waiting
#: (type:event), or idle inside a transaction (waiting for its client).
WAITS_SQL = """
SELECT CASE WHEN state = 'idle in transaction' THEN 'idle in transaction'
            ELSE coalesce(wait_event_type || ':' || wait_event, 'on CPU') END
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
  AND datname = current_database() AND state IN ('active', 'idle in transaction')
"""


class WaitSampler:
    """Average number of client sessions in each state, sampled every 0.1 s."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._counts: Counter[str] = Counter()
        self.samples = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> dict[str, float]:
        """Sessions on average per state, most frequent first."""
        self._stopped.set()
        self._thread.join()
        n = max(self.samples, 1)
        return {k: v / n for k, v in self._counts.most_common()}

    def _loop(self) -> None:
        with psycopg.connect(self._url, autocommit=True) as conn:
            while not self._stopped.wait(0.1):
                rows = conn.execute(WAITS_SQL).fetchall()
                self.samples += 1
                self._counts.update(row[0] for row in rows)


# --- Tables and statements -------------------------------------------------------------------

TABLE_STATS_SQL = """
SELECT relname, seq_scan, seq_tup_read, coalesce(idx_scan, 0), n_tup_ins, n_live_tup
FROM pg_stat_user_tables WHERE relname = ANY(%s)
"""


@dataclass(frozen=True)
class TableCounters:
    """pg_stat_user_tables counters of one table (the first four are cumulative)."""

    seq_scan: int
    seq_tup_read: int
    idx_scan: int
    inserted: int
    live_rows: int

    def minus(self, before: TableCounters) -> TableCounters:
        """What happened between two readings; live rows as of the later one."""
        return TableCounters(
            self.seq_scan - before.seq_scan,
            self.seq_tup_read - before.seq_tup_read,
            self.idx_scan - before.idx_scan,
            self.inserted - before.inserted,
            self.live_rows,
        )


def table_stats(url: str, settle: float = STATS_SETTLE_S) -> dict[str, TableCounters]:
    """The write path's tables' counters, once recent backend reports have landed."""
    time.sleep(settle)
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(TABLE_STATS_SQL, (list(WRITE_PATH_TABLES),)).fetchall()
    return {r[0]: TableCounters(*(int(x) for x in r[1:])) for r in rows}


def table_deltas(
    before: dict[str, TableCounters], after: dict[str, TableCounters]
) -> dict[str, TableCounters]:
    zero = TableCounters(0, 0, 0, 0, 0)
    return {t: after[t].minus(before.get(t, zero)) for t in WRITE_PATH_TABLES if t in after}


@dataclass(frozen=True)
class Statement:
    """One statement (or PL/pgSQL function) and its time during a window."""

    text: str
    calls: int
    total_ms: float
    self_ms: float | None
    """Functions only: time outside the functions it called."""


STATEMENTS_SQL = """
SELECT regexp_replace(query, '\\s+', ' ', 'g'), calls, total_exec_time
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY total_exec_time DESC LIMIT %s
"""
FUNCTIONS_SQL = """
SELECT schemaname || '.' || funcname, calls, total_time, self_time FROM pg_stat_user_functions
"""


class StatementStats:
    """Top statements by total time: pg_stat_statements, else PL/pgSQL functions.

    pg_stat_statements needs `shared_preload_libraries` (a server restart) and
    the extension in the database; `enable_statements()` arranges both when the
    server ships it. Without it, `track_functions = pl` times every PL/pgSQL
    function, triggers included, which is where this gateway's SQL runs.
    """

    TOP = 8

    def __init__(self, url: str, *, statements: bool) -> None:
        self._url = url
        self.source = "pg_stat_statements" if statements else "pg_stat_user_functions"
        self._before: dict[str, tuple[int, float, float]] = {}

    def start(self) -> None:
        with psycopg.connect(self._url, autocommit=True) as conn:
            if self.source == "pg_stat_statements":
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                conn.execute("SELECT pg_stat_statements_reset()")
            else:
                self._before = _functions(conn)

    def stop(self) -> list[Statement]:
        """The window's top entries; call after `table_stats` (which lets reports land)."""
        with psycopg.connect(self._url, autocommit=True) as conn:
            if self.source == "pg_stat_statements":
                rows = conn.execute(STATEMENTS_SQL, (self.TOP,)).fetchall()
                return [Statement(r[0][:160], int(r[1]), float(r[2]), None) for r in rows]
            after = _functions(conn)
        found = []
        for name, (calls, total, own) in after.items():
            c0, t0, s0 = self._before.get(name, (0, 0.0, 0.0))
            if calls > c0:
                found.append(Statement(name, calls - c0, total - t0, own - s0))
        return sorted(found, key=lambda s: -s.total_ms)[: self.TOP]


def _functions(conn: psycopg.Connection) -> dict[str, tuple[int, float, float]]:
    rows = conn.execute(FUNCTIONS_SQL).fetchall()
    return {r[0]: (int(r[1]), float(r[2]), float(r[3])) for r in rows}


# --- Memory -----------------------------------------------------------------------------------


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

    def workers(self) -> list[psutil.Process]:
        if self._workers == 1:
            return [self._root]
        with suppress(psutil.Error):
            return [p for p in self._root.children() if "spawn_main" in " ".join(p.cmdline())]
        return []

    def _sample(self, *, high_water: bool = False) -> None:
        for proc in self.workers():
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


# --- Python profile ---------------------------------------------------------------------------


@dataclass
class Profile:
    """A py-spy profile of one worker: on-CPU samples, by package and by function."""

    samples: int
    by_package: list[tuple[str, float]] = field(default_factory=list)
    """Share of samples whose innermost frame is in each package (self time)."""
    by_function: list[tuple[str, float]] = field(default_factory=list)
    """Share of samples whose innermost frame is each function (self time)."""
    raw: Path | None = None
    error: str | None = None


def py_spy() -> str | None:
    """py-spy next to this interpreter (the venv), else on PATH."""
    own = Path(sys.executable).parent / "py-spy"
    return str(own) if own.exists() else shutil.which("py-spy")


class PySpy:
    """`py-spy record` of one process for a number of seconds, as collapsed stacks."""

    def __init__(self, pid: int, seconds: int, out: Path) -> None:
        binary = py_spy()
        if binary is None:
            raise SystemExit("--py-spy: py-spy is not installed (pip install py-spy)")
        self._out = out
        cmd = [binary, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "100"]
        cmd += ["--format", "raw", "--output", str(out), "--nonblocking", "--full-filenames"]
        self._log = out.with_suffix(".log").open("w")
        self._proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)

    def wait(self) -> Profile:
        self._proc.wait()
        self._log.close()
        if self._proc.returncode != 0 or not self._out.exists():
            tail = self._out.with_suffix(".log").read_text().strip().splitlines()[-1:]
            return Profile(0, error=f"py-spy exited {self._proc.returncode}: {' '.join(tail)}")
        return summarize_stacks(self._out)


_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def summarize_stacks(raw: Path, top: int = 10) -> Profile:
    """Self time per package and per function from py-spy's collapsed stacks."""
    packages: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        leaf = stack.split(";")[-1]
        match = _FRAME.match(leaf)
        func, file = (match["func"], match["file"]) if match else (leaf, "?")
        packages[_package(file)] += n
        functions[f"{func} ({_short(file)})"] += n
    share = 100 / max(total, 1)
    return Profile(
        samples=total,
        by_package=[(k, v * share) for k, v in packages.most_common(top)],
        by_function=[(k, v * share) for k, v in functions.most_common(top)],
        raw=raw,
    )


def _package(file: str) -> str:
    """Where a source file belongs: an installed package, the checkout's, or the stdlib module."""
    parts = Path(file).parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            rest = parts[parts.index(marker) + 1 :]
            return rest[0].removesuffix(".py") if rest else file
    for name in ("gateway", "providers"):
        if name in parts:
            return name
    stdlib = [i for i, part in enumerate(parts) if re.fullmatch(r"python3\.\d+", part)]
    if stdlib and len(parts) > stdlib[-1] + 1:
        return "stdlib " + parts[stdlib[-1] + 1].removesuffix(".py")
    return Path(file).name


def _short(file: str) -> str:
    parts = Path(file).parts
    return "/".join(parts[-2:]) if len(parts) >= 2 else file


# --- One window ---------------------------------------------------------------------------------


@dataclass
class Window:
    """What the probes saw during one measured window."""

    cpu: CpuFigures
    waits: dict[str, float] = field(default_factory=dict)
    tables: dict[str, TableCounters] = field(default_factory=dict)
    statements: list[Statement] = field(default_factory=list)
    profile: Profile | None = None
