"""A counting semaphore that serves its waiters in the order they came.

``threading.Semaphore`` lets a thread that has just arrived take a slot freed for one
that has waited the whole timeout (it wakes the waiter, but any thread may win the
race for the count). Under a sustained burst a store's oldest request can therefore
time out while newer ones are served. Here a freed slot is handed to the longest
waiter directly; the count only grows when nobody waits.
"""

from __future__ import annotations

import threading
from collections import deque


class FairSlots:
    """``count`` slots, handed out first come, first served."""

    def __init__(self, count: int) -> None:
        self._lock = threading.Lock()
        self._count = count
        self._free = count
        self._waiters: deque[threading.Lock] = deque()

    def acquire(self, timeout: float) -> bool:
        """Take a slot, waiting at most ``timeout`` seconds behind earlier waiters."""
        with self._lock:
            if self._free and not self._waiters:
                self._free -= 1
                return True
            handoff = threading.Lock()
            handoff.acquire()
            self._waiters.append(handoff)
        try:
            if handoff.acquire(timeout=min(timeout, threading.TIMEOUT_MAX)):
                return True  # release() handed its slot to this thread
        except BaseException:
            # Interrupted (a signal handler raised, say): leave no waiter behind, and
            # pass on a slot handed over meanwhile, or it would be lost for good.
            if not self._withdraw(handoff):
                self.release()
            raise
        return not self._withdraw(handoff)  # a slot handed over as the wait ran out

    def _withdraw(self, handoff: threading.Lock) -> bool:
        """Take ``handoff`` out of the queue; False if a slot was handed to it already."""
        with self._lock:
            try:
                self._waiters.remove(handoff)
            except ValueError:
                return False
            return True

    def release(self) -> None:
        """Give the slot back: to the longest waiter, if any."""
        with self._lock:
            if self._waiters:
                self._waiters.popleft().release()
            elif self._free < self._count:
                self._free += 1
            else:
                raise ValueError("FairSlots released more often than acquired")

    @property
    def waiting(self) -> int:
        """Threads waiting for a slot now."""
        return len(self._waiters)
