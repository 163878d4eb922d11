"""The embedded PostgreSQL (pgserver) used when no DATABASE_URL is set.

pgserver ships real PostgreSQL 16 binaries as a wheel. Its data lives under
`GATEWAY_DATA_DIR/pgdata` and survives restarts. pgserver counts the processes
using a server in a handle file (`pgdata/.handle_pids.json`) and stops the
server when the last one exits; a process killed with SIGKILL never removes
itself, and the server would then outlive every later clean stop. So each
start first forgets the entries of processes that are gone.

`gateway serve` also supervises the server (`supervise_embedded`): a thread
checks the postmaster every second and starts it again when it has died
(webhooks get 503 meanwhile, and `/readyz` says the database is unreachable).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import threading
import warnings
from pathlib import Path
from typing import Any, Final

import psutil
import structlog

log = structlog.get_logger(__name__)

#: pgserver's list of the processes using a server, inside its pgdata.
HANDLE_FILE: Final = ".handle_pids.json"
#: How often the supervisor looks at the postmaster.
CHECK_EVERY_S: Final = 1.0
#: Longest wait between two failed restarts.
MAX_RETRY_S: Final = 30.0


def start_embedded(data_dir: Path) -> str:
    """Start (or join) the embedded server and return its connection URL."""
    server = _server(data_dir)
    url: str = server.get_uri()
    log.info("embedded_postgres.started", pgdata=str(server.pgdata))
    return url


def supervise_embedded(data_dir: Path) -> Supervisor:
    """Restart the embedded server whenever it dies, until this process exits."""
    supervisor = Supervisor(_server(data_dir))
    supervisor.start()
    # atexit runs last-registered first: the supervisor stops before pgserver
    # stops the server, so it never starts it again on the way out.
    atexit.register(supervisor.stop)
    return supervisor


def _server(data_dir: Path) -> Any:
    """This process's pgserver handle on `data_dir/pgdata`, started when needed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pgserver  # imported late: it starts nothing, but is slow to import

        pgdata = data_dir.resolve() / "pgdata"
        pgdata.mkdir(parents=True, exist_ok=True)
        forget_dead_users(pgdata)
        return pgserver.get_server(  # type: ignore[attr-defined]  # re-exported, untyped
            pgdata, cleanup_mode="stop"
        )


def forget_dead_users(pgdata: Path) -> list[int]:
    """Remove processes that no longer run from pgserver's handle file; returns them."""
    from pgserver.postgres_server import PostgresServer

    path = pgdata / HANDLE_FILE
    with PostgresServer._lock:  # the lock pgserver itself takes around the file
        try:
            pids = json.loads(path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError):
            pids = None
        if not isinstance(pids, list) or not all(isinstance(p, int) for p in pids):
            log.warning("embedded_postgres.handle_file_unreadable", path=str(path))
            path.write_text("[]")
            return []
        dead = [pid for pid in pids if not _alive(pid)]
        if dead:
            path.write_text(json.dumps([pid for pid in pids if pid not in dead]))
            log.warning("embedded_postgres.dead_users_forgotten", pids=dead)
        return dead


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie has exited: it only waits to be reaped)."""
    try:
        status: str = psutil.Process(pid).status()
    except psutil.Error:
        return False
    return status != psutil.STATUS_ZOMBIE


class Supervisor:
    """A thread that starts the embedded server again whenever its postmaster is gone."""

    def __init__(self, server: Any, check_every_s: float = CHECK_EVERY_S) -> None:
        self._server = server
        self._check_every_s = check_every_s
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._watch, name="embedded-postgres-supervisor", daemon=True
        )
        self.restarts = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (a restart under way is finished first)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()

    def _watch(self) -> None:
        while not self._stopping.wait(self._check_every_s):
            info = self._server.get_postmaster_info()
            if _postmaster_runs(info):
                continue
            log.error("embedded_postgres.died", pid=info.pid, pgdata=str(self._server.pgdata))
            self._restart()

    def _restart(self) -> None:
        """Start the server, retrying with backoff until it runs or we are stopping."""
        from pgserver.postgres_server import PostgresServer

        wait = self._check_every_s
        while not self._stopping.is_set():
            pgserver_log = logging.getLogger("pgserver")
            try:
                # pgserver logs the whole server log on a failed start: ours is shorter.
                pgserver_log.disabled = True
                with PostgresServer._lock:
                    self._server.ensure_postgres_running()
            except Exception as exc:  # pg_ctl failed: the old backends may still hold memory
                log.error(
                    "embedded_postgres.restart_failed",
                    error=f"{type(exc).__name__}: {exc}",
                    server_log=_tail(self._server.pgdata / "log"),
                    retry_in_s=wait,
                )
                self._stopping.wait(wait)
                wait = min(wait * 2, MAX_RETRY_S)
            else:
                self.restarts += 1
                log.warning(
                    "embedded_postgres.restarted", pid=self._server.get_postmaster_info().pid
                )
                return
            finally:
                pgserver_log.disabled = False


def _postmaster_runs(info: Any) -> bool:
    """Whether the postmaster of `info` runs; a dead child of ours is reaped on the way."""
    process = info.process
    if process is None or not process.is_running():
        return False
    try:
        if process.status() != psutil.STATUS_ZOMBIE:
            return True
    except psutil.Error:
        return False
    # A zombie child (serve running as PID 1 in a container inherits the
    # postmaster): reap it, or PostgreSQL takes its pid for a running server.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(process.pid, os.WNOHANG)
    return False


def _tail(path: Path, lines: int = 5) -> str:
    """The last lines of the server's log, to say why it does not start."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
