"""Time, injected: the engine and its workers never call ``time.time()`` themselves.

Tests drive a :class:`ManualClock` forward instead of sleeping, so a 30-minute expiry
is tested in microseconds and never flakes.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch."""


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class ManualClock:
    """A clock that moves only when told to (thread-safe)."""

    def __init__(self, start_ms: int = 1_767_225_600_000) -> None:  # 2026-01-01T00:00Z
        self._now = start_ms
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        with self._lock:
            return self._now

    def advance(self, seconds: float = 0, *, ms: int = 0) -> int:
        with self._lock:
            self._now += round(seconds * 1000) + ms
            return self._now
