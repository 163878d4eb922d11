"""Row ids that sort by creation time (UUID version 7, RFC 9562).

Random (version 4) primary keys put every insert on a random page of the
index, so each batch dirties, and after a checkpoint writes in full to the
WAL, one index page per row; time-ordered ids append to the index's last
pages. The 74 random bits keep them unguessable and collision-free.
"""

from __future__ import annotations

import os
import time
from uuid import UUID

_VERSION_7 = 0x7 << 76
_VARIANT = 0b10 << 62


def uuid7() -> UUID:
    """A new version 7 UUID: 48 bits of Unix milliseconds, then random bits."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    rand_a = rand >> 68  # 12 bits
    rand_b = rand & ((1 << 62) - 1)
    return UUID(int=(millis << 80) | _VERSION_7 | (rand_a << 64) | _VARIANT | rand_b)
