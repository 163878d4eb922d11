"""A progress line on stderr for replay and reprocess, without a dependency.

On a terminal it is one line redrawn in place; elsewhere (CI logs, files) a
plain line every `interval_s`, so that short runs print nothing and long runs
still show they are moving. stdout stays free for the summary.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


class Progress:
    """`label done/total (pct) rate/s`, drawn at most every `redraw_s` on a terminal."""

    def __init__(
        self,
        label: str,
        total: int | None,
        *,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        interval_s: float = 10.0,
        redraw_s: float = 0.1,
    ) -> None:
        self._label = label
        self._total = total
        self._stream = stream or sys.stderr
        self._clock = clock
        self._tty = self._stream.isatty()
        self._every = redraw_s if self._tty else interval_s
        self._started = clock()
        self._drawn_at = self._started
        self._drawn = False
        self.done = 0

    def advance(self, n: int = 1) -> None:
        """Count `n` more items; redraw when it is time to."""
        self.done += n
        now = self._clock()
        if now - self._drawn_at >= self._every:
            self._draw(now)

    def close(self) -> None:
        """Draw the final state, if anything was drawn, and end the line."""
        if self._drawn:
            self._draw(self._clock())
            if self._tty:
                self._stream.write("\n")
                self._stream.flush()

    def _draw(self, now: float) -> None:
        elapsed = max(now - self._started, 1e-9)
        done = f"{self.done}/{self._total}" if self._total is not None else str(self.done)
        percent = f" ({100 * self.done // self._total}%)" if self._total else ""
        line = f"{self._label} {done}{percent} {self.done / elapsed:.0f}/s"
        self._stream.write(f"\r{line}\x1b[K" if self._tty else f"{line}\n")
        self._stream.flush()
        self._drawn_at = now
        self._drawn = True
