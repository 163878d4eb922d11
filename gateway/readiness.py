"""What `/readyz` knows beyond "the database answers": whether writes succeed.

A database that answers `SELECT 1` can still refuse every write (disk full,
read-only after a failover), and a readiness check that only reads would
then send traffic to a gateway that answers every webhook with 503. The
ingestion writers report each commit's outcome here (an attribute store, no
I/O); readiness is lost while the latest commit failed, and comes back with
the next successful one. So that a gateway taken out of rotation can prove
itself again, a failure older than `window_s` no longer counts: the next
webhooks either commit (ready) or fail again (not ready for another window).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

#: How long a failed commit keeps the gateway not ready when nothing else is written.
FAILURE_WINDOW_S: Final = 30.0


class WriteHealth:
    """The outcome of the latest ingestion commit."""

    def __init__(
        self,
        window_s: float = FAILURE_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._window_s = window_s
        self._clock = clock
        self._failed_at: float | None = None
        self._cause = ""

    def committed(self) -> None:
        """A batch was committed: writes work."""
        self._failed_at = None

    def failed(self, cause: str) -> None:
        """A batch could not be stored at all: its senders got 503."""
        self._failed_at = self._clock()
        self._cause = cause

    def failing(self) -> str | None:
        """Why writes are failing now; None when the latest commit succeeded (or is old news)."""
        if self._failed_at is None or self._clock() - self._failed_at > self._window_s:
            return None
        return self._cause
