"""The benchmark's report: one table, the targets met or not, then where the time went.

Markdown, printed and written to bench/results/latest.md by bench/ingest.py.
docs/performance.md explains how to read each part.
"""

from __future__ import annotations

import os
import shlex
from typing import TYPE_CHECKING

from probes import WRITE_PATH_TABLES, Window

if TYPE_CHECKING:
    from ingest import LoadResult, PhantomBusterResult, PhantomBusterRun, Results

#: Targets of issue #12.
TARGET_RATIO, STRETCH_RATIO = 1.0, 1.5
TARGET_CEILING_SHARE = 0.5
TARGET_P99_MS = 50.0
TARGET_GROWTH_SHARE = 0.8
TARGET_PB_ROWS, TARGET_PB_S, TARGET_PB_NEW = 20_000, 3.0, 100
#: "Linear in rows": time per row of the largest run at most this times the smallest's.
TARGET_PB_LINEARITY = 1.5
TARGET_RSS_MB = 150.0
JUDGED = ("hot", "spread")
"""The scenarios the throughput and latency targets are about."""


def render(results: Results, versions: dict[str, str], machine: str) -> str:
    """The whole report."""
    args = results.args
    lines = [
        f"# Ingestion benchmark, {results.started:%Y-%m-%d %H:%M} UTC",
        "",
    ]
    if args.quick:
        lines += [
            "**--quick: a smoke check.** Runs of 5 s and sizes divided by 10: the figures say"
            " that the instrument works, not whether the targets are met.",
            "",
        ]
    lines += [
        f"wrk {args.connections} connections ({args.threads} threads), {args.duration} s measured"
        f" after {args.warmup} s of warm-up per run; `gateway serve --workers {args.workers}`;"
        " deliveries/s counts 200 answers, sent only after COMMIT.",
        "",
        *main_table(results),
        "",
        "## Targets (issue #12)",
        "",
        "| target | figures | verdict |",
        "|---|---|---|",
        *(f"| {name} | {figures} | {verdict(met)} |" for name, figures, met in targets(results)),
        "",
    ]
    if results.phantombuster:
        lines += ["## PhantomBuster runs", "", *phantombuster_table(results.phantombuster), ""]
    lines += ["## Where the time goes", "", *cpu_table(results), "", *waits_list(results), ""]
    lines += [*scans_table(results), "", *statements_section(results), *profiles_section(results)]
    lines += ["## Verification", "", *verification_list(results), ""]
    history = []
    if growth := results.loads.get("growth"):
        stored = ", ".join(f"{v:,} {k}" for k, v in growth.stored_before.items())
        history.append(
            f"- growth: its history ({stored}) took {growth.preload_s:.0f} s to load,"
            " before the part's clock started."
        )
    lines += [
        "## Run",
        "",
        f"- Reproduce: `{shlex.join(['bench/run', *results.command])}` from a checkout"
        f" at {versions.get('gateway', '?')}.",
        f"- Machine: {machine}.",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
        f"- PostgreSQL: {settings_line(results)}",
        "- Databases: one per part, cloned from a migrated template, with a little history"
        " (100 past campaigns, 200 enrollments, 1,000 events) analyzed before the part;"
        + (
            " autovacuum left on (--autovacuum)."
            if args.autovacuum
            else " autovacuum then off on their tables, so the statistics stay those of a"
            " nearly empty database for the whole part."
        ),
        *history,
    ]
    return "\n".join(lines) + "\n"


# --- The table --------------------------------------------------------------------------------


def main_table(results: Results) -> list[str]:
    lines = [
        "| run | deliveries/s | events/s | p50 ms | p99 ms | × pgbench | × no-db ceiling"
        " | peak RSS MB/worker | 503s | write-path seq scans (rows read) | verified |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    tps = results.pgbench.tps if results.pgbench else None
    ceiling = results.loads["nodb"].run.deliveries_per_s if "nodb" in results.loads else None
    if results.pgbench:
        pg = results.pgbench
        lines.append(
            f"| pgbench: one webhook's write per transaction, 32 clients | {pg.tps:,.0f}"
            f" | {pg.tps:,.0f} | {pg.p50_ms:.1f} | {pg.p99_ms:.1f} | 1.00"
            f" | {ratio(pg.tps, ceiling)}"
            f" | – | {pg.failed} failed | – | {ok(pg.verification.ok)} |"
        )
    for r in results.loads.values():
        run = r.run
        if r.verification is None:  # the no-database ceiling
            stored, failures, scans = "–", "–", "–"
            answered = "– (stores nothing)"
        else:
            stored = f"{run.events_per_s:,.0f}"
            failures = f"{run.total('codes').get('503', 0):,}"
            scans = seq_scans(r.window)
            answered = ok(r.verification.ok)
        lines.append(
            f"| {label(r)} | {run.deliveries_per_s:,.0f} | {stored} | {run.latency_ms('50'):.1f}"
            f" | {run.latency_ms('99'):.1f} | {ratio(run.deliveries_per_s, tps)}"
            f" | {ratio(run.deliveries_per_s, ceiling)} | {r.rss_mb:.0f} | {failures} | {scans}"
            f" | {answered} |"
        )
    return lines


def label(r: LoadResult) -> str:
    if r.part == "growth" and r.stored_before:
        return (
            f"{r.label} ({r.stored_before['events']:,} events,"
            f" {r.stored_before['enrollments']:,} enrollments stored)"
        )
    return r.label


def ratio(value: float | None, reference: float | None) -> str:
    if value is None or not reference:
        return "–"
    return f"{value / reference:.2f}"


def ok(passed: bool) -> str:
    return "OK" if passed else "**FAILED**"


def verdict(met: bool | None) -> str:
    return "not measured" if met is None else "met" if met else "**not met**"


def seq_scans(window: Window) -> str:
    if not window.tables:
        return "–"
    scans = sum(t.seq_scan for t in window.tables.values())
    rows = sum(t.seq_tup_read for t in window.tables.values())
    return f"{scans:,} ({rows:,})"


# --- Targets ----------------------------------------------------------------------------------


def targets(results: Results) -> list[tuple[str, str, bool | None]]:
    """(target, the figures behind it, met / not met / not measured)."""
    loads = results.loads
    judged = [loads[p] for p in JUDGED if p in loads]
    tps = results.pgbench.tps if results.pgbench else None
    ceiling = loads["nodb"].run.deliveries_per_s if "nodb" in loads else None
    found: list[tuple[str, str, bool | None]] = []

    def each(values: dict[str, float], fmt: str) -> str:
        return ", ".join(f"{k} {fmt.format(v)}" for k, v in values.items()) or "–"

    if tps and judged:
        ratios = {r.part: r.run.deliveries_per_s / tps for r in judged}
        stretch = verdict(min(ratios.values()) >= STRETCH_RATIO)
        found.append(
            (
                f"durable deliveries/s ≥ {TARGET_RATIO:.1f}× pgbench (stretch {STRETCH_RATIO}×)",
                each(ratios, "{:.2f}×") + f"; stretch {stretch}",
                min(ratios.values()) >= TARGET_RATIO,
            )
        )
    else:
        found.append((f"≥ {TARGET_RATIO:.1f}× pgbench", "needs pgbench and hot/spread", None))
    if ceiling and judged:
        shares = {r.part: r.run.deliveries_per_s / ceiling for r in judged}
        found.append(
            (
                f"≥ {TARGET_CEILING_SHARE:.0%} of the no-database ceiling",
                each(shares, "{:.0%}"),
                min(shares.values()) >= TARGET_CEILING_SHARE,
            )
        )
    else:
        found.append(("≥ 50% of the no-database ceiling", "needs nodb and hot/spread", None))
    p99 = {r.part: r.run.latency_ms("99") for r in judged}
    found.append(
        (
            f"p99 ≤ {TARGET_P99_MS:.0f} ms at {results.args.connections} connections",
            each(p99, "{:.0f} ms"),
            max(p99.values()) <= TARGET_P99_MS if p99 else None,
        )
    )
    if "growth" in loads and "hot" in loads:
        growth, hot = loads["growth"], loads["hot"]
        share = growth.run.deliveries_per_s / hot.run.deliveries_per_s
        stored = growth.stored_before
        found.append(
            (
                f"growth: throughput within {1 - TARGET_GROWTH_SHARE:.0%} of the empty database",
                f"{share:.0%} of hot ({growth.run.deliveries_per_s:,.0f} vs"
                f" {hot.run.deliveries_per_s:,.0f}/s) with {stored.get('events', 0):,} events"
                f" and {stored.get('enrollments', 0):,} enrollments stored; write-path seq"
                f" scans {seq_scans(growth.window)} vs {seq_scans(hot.window)}",
                share >= TARGET_GROWTH_SHARE,
            )
        )
    else:
        found.append(("growth within 20% of the empty database", "needs growth and hot", None))
    found += phantombuster_targets(results.phantombuster)
    rss = {r.part: r.rss_mb for r in loads.values() if r.verification is not None}
    if results.phantombuster:
        rss["phantombuster"] = results.phantombuster.rss_mb
    found.append(
        (
            f"peak RSS ≤ {TARGET_RSS_MB:.0f} MB per worker",
            each(rss, "{:.0f} MB"),
            max(rss.values()) <= TARGET_RSS_MB if rss else None,
        )
    )
    found.append(
        (
            "verification (nothing lost, nothing doubled, counters exact)",
            "every part" if results.ok else "see Verification",
            results.ok,
        )
    )
    return found


def phantombuster_targets(pb: PhantomBusterResult | None) -> list[tuple[str, str, bool | None]]:
    name = f"PhantomBuster run of {TARGET_PB_ROWS:,} rows ≤ {TARGET_PB_S:.0f} s"
    linear = f"PhantomBuster time linear in rows (per-row time within {TARGET_PB_LINEARITY}×)"
    rerun = f"its re-run (+{TARGET_PB_NEW} rows) ≤ {TARGET_PB_S:.0f} s, exactly {TARGET_PB_NEW} new"
    if pb is None:
        return [(name, "not run", None), (linear, "not run", None), (rerun, "not run", None)]
    firsts = [r for r in pb.runs if not r.rerun]
    largest, again = firsts[-1], pb.runs[-1]
    full = largest.rows == TARGET_PB_ROWS
    sized = "" if full else f" (largest run {largest.rows:,} rows: not judged)"

    def fast(r: PhantomBusterRun) -> bool:
        return r.status_code == 200 and r.verification.ok and r.seconds <= TARGET_PB_S

    found: list[tuple[str, str, bool | None]] = [
        (
            name,
            f"{outcome(largest)} for {largest.rows:,} rows{sized}",
            fast(largest) if full else None,
        )
    ]
    if len(firsts) > 1 and all(r.status_code == 200 for r in firsts):
        small = firsts[0]
        growth = (largest.seconds / largest.rows) / (small.seconds / small.rows)
        times = ", ".join(f"{per_thousand(r.seconds, r.rows)} at {r.rows:,}" for r in firsts)
        found.append(
            (linear, f"ms per 1,000 rows: {times}: ×{growth:.2f}", growth <= TARGET_PB_LINEARITY)
        )
    elif len(firsts) > 1:
        refused = ", ".join(f"{r.rows:,} rows {outcome(r)}" for r in firsts if r.status_code != 200)
        found.append((linear, refused, False))
    else:
        found.append((linear, "needs two sizes", None))
    new = again.answer.get("events")
    found.append(
        (
            rerun,
            f"{outcome(again)}, {new} new / {again.answer.get('duplicates')} duplicates{sized}",
            fast(again) and new == TARGET_PB_NEW if full else None,
        )
    )
    return found


def outcome(r: PhantomBusterRun) -> str:
    if r.status_code == 200:
        return f"{r.seconds:.2f} s"
    return f"HTTP {r.status_code} after {r.seconds:.1f} s"


# --- PhantomBuster ----------------------------------------------------------------------------


def phantombuster_table(pb: PhantomBusterResult) -> list[str]:
    lines = [
        "One end-of-run webhook each, its result inline (Auto Connect rows), into a fresh"
        " instance; the re-run repeats the largest run's rows and adds 100 (a cumulative"
        f" result). Peak RSS per worker over these runs: {pb.rss_mb:.0f} MB.",
        "",
        "| run | body MB | seconds | ms per 1,000 rows | HTTP | events | duplicates"
        " | PostgreSQL CPU s | gateway CPU s | write-path seq scans (rows read) | verified |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for r in pb.runs:
        cores = r.window.cpu.cores
        size = r.rows * 260 / 2**20  # about 260 bytes a row, escaped inside resultObject
        lines.append(
            f"| {r.label} | ~{size:.1f} | {r.seconds:.2f} | {per_thousand(r.seconds, r.rows)}"
            f" | {r.status_code} | {r.answer.get('events', '–')}"
            f" | {r.answer.get('duplicates', '–')}"
            f" | {cores['postgres'] * r.window.cpu.seconds:.2f}"
            f" | {cores['server'] * r.window.cpu.seconds:.2f} | {seq_scans(r.window)}"
            f" | {ok(r.verification.ok)} |"
        )
    return lines


def per_thousand(seconds: float, rows: int) -> str:
    """Milliseconds per 1,000 rows."""
    return f"{seconds * 1e6 / rows:,.0f}"


# --- Where the time goes ----------------------------------------------------------------------


def windows(results: Results) -> list[tuple[str, Window, float]]:
    """(run, its probes, deliveries per second) of every measured window."""
    found = []
    if results.pgbench:
        found.append(("pgbench", results.pgbench.window, results.pgbench.tps))
    found += [(r.part, r.window, r.run.deliveries_per_s) for r in results.loads.values()]
    return found


def cpu_table(results: Results) -> list[str]:
    lines = [
        f"CPU in cores (of the machine's {os.cpu_count()}), from /proc as shared/peers/cpusplit.py"
        " reads it (server: the no-database app's or the gateway's processes), and CPU time per"
        " delivery:",
        "",
        "| run | postgres | server | load generator | other | idle | PostgreSQL µs/delivery"
        " | server µs/delivery | kernel share postgres / server |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, window, rate in windows(results):
        c = window.cpu.cores
        share = window.cpu.kernel_share
        lines.append(
            f"| {name} | {c['postgres']:.2f} | {c['server']:.2f} | {c['load generator']:.2f}"
            f" | {c['other']:.2f} | {c['idle']:.2f} | {per_delivery(c['postgres'], rate)}"
            f" | {per_delivery(c['server'], rate)}"
            f" | {share.get('postgres', 0):.0%} / {share.get('server', 0):.0%} |"
        )
    return lines


def per_delivery(cores: float, rate: float) -> str:
    if not rate or not cores:
        return "–"
    return f"{cores * 1e6 / rate:,.0f}"


def waits_list(results: Results) -> list[str]:
    lines = [
        "PostgreSQL client sessions of the run's database, on average, by what they were doing"
        " (pg_stat_activity every 0.1 s; `Lock:*` are waits on another transaction):",
        "",
    ]
    for name, window, _ in windows(results):
        if name == "nodb":
            continue
        busy = sum(window.waits.values())
        locks = sum(v for k, v in window.waits.items() if k.startswith("Lock:"))
        top = ", ".join(f"{k} {v:.2f}" for k, v in list(window.waits.items())[:6]) or "none"
        share = f"; lock waits {locks / busy:.0%} of busy sessions" if busy else ""
        lines.append(f"- {name}: {top}{share}")
    return lines


def scans_table(results: Results) -> list[str]:
    rows = [(n, w) for n, w, _ in windows(results) if w.tables]
    if results.phantombuster:
        rows += [(f"phantombuster {r.label}", r.window) for r in results.phantombuster.runs]
    if not rows:
        return []
    lines = [
        "Sequential scans during the measured run (pg_stat_user_tables deltas), as"
        " `seq scans / rows they read`, and index scans; `live` is the table's size after:",
        "",
        "| run | " + " | ".join(WRITE_PATH_TABLES) + " |",
        "|---|" + "--:|" * len(WRITE_PATH_TABLES),
    ]
    for name, window in rows:
        cells = []
        for table in WRITE_PATH_TABLES:
            t = window.tables.get(table)
            cells.append(
                f"{t.seq_scan:,} / {t.seq_tup_read:,}; idx {t.idx_scan:,}; live {t.live_rows:,}"
                if t
                else "–"
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def statements_section(results: Results) -> list[str]:
    entries = [(n, w) for n, w, _ in windows(results) if w.statements]
    if results.phantombuster:
        entries += [
            (f"phantombuster {r.label}", r.window)
            for r in results.phantombuster.runs
            if r.window.statements
        ]
    if not entries:
        return []
    source = "pg_stat_statements" if entries[0][1].statements[0].self_ms is None else None
    lines = [
        "",
        (
            "Top statements by total time (pg_stat_statements):"
            if source
            else "Top PL/pgSQL functions by total time (pg_stat_user_functions, track_functions"
            " = pl; pg_stat_statements is not shipped with pgserver's PostgreSQL). Total time"
            " includes the functions and triggers a function fires; self time does not:"
        ),
        "",
    ]
    for name, window in entries:
        lines += [f"**{name}**", "", "| statement | calls | total ms | self ms | ms per call |"]
        lines.append("|---|--:|--:|--:|--:|")
        for s in window.statements:
            own = "–" if s.self_ms is None else f"{s.self_ms:,.0f}"
            text = s.text.replace("|", "\\|")
            lines.append(
                f"| `{text}` | {s.calls:,} | {s.total_ms:,.0f} | {own}"
                f" | {s.total_ms / max(s.calls, 1):,.2f} |"
            )
        lines.append("")
    return lines


def profiles_section(results: Results) -> list[str]:
    lines = []
    for r in results.loads.values():
        profile = r.window.profile
        if profile is None:
            continue
        lines += [f"py-spy, one worker of {r.part} ({profile.samples:,} on-CPU samples):", ""]
        if profile.error:
            lines += [f"- {profile.error}", ""]
            continue
        lines.append(
            "- self time by package: " + ", ".join(f"{k} {v:.0f}%" for k, v in profile.by_package)
        )
        lines.append(
            "- self time by function: "
            + ", ".join(f"`{k}` {v:.0f}%" for k, v in profile.by_function)
        )
        lines += [f"- collapsed stacks: {profile.raw}", ""]
    return lines


def verification_list(results: Results) -> list[str]:
    lines = []
    if results.pgbench:
        lines.append("- pgbench: " + "; ".join(results.pgbench.verification.describe()))
    for r in results.loads.values():
        if r.verification is not None:
            lines.append(f"- {r.part}: " + "; ".join(r.verification.describe()))
    if results.phantombuster:
        for pb in results.phantombuster.runs:
            lines.append(f"- phantombuster {pb.label}: " + "; ".join(pb.verification.describe()))
    return lines


def settings_line(results: Results) -> str:
    s = results.settings
    statements = (
        "pg_stat_statements loaded"
        if "pg_stat_statements" in s.get("shared_preload_libraries", "")
        else "pg_stat_statements not available"
    )
    return (
        f"{s.get('server_version', '?')} embedded (pgserver), Unix socket, defaults:"
        f" synchronous_commit {s.get('synchronous_commit')}, fsync {s.get('fsync')},"
        f" shared_buffers {s.get('shared_buffers')}, max_wal_size {s.get('max_wal_size')},"
        f" autovacuum {s.get('autovacuum')} (cluster); track_functions"
        f" {s.get('track_functions')} for the timings; {statements}."
    )
