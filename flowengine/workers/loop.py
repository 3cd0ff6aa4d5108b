"""Run a worker's ``run_once`` until told to stop, sleeping only when idle."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("flowengine.workers")


def run_until(stop: threading.Event, run_once: Callable[[], int], idle_seconds: float) -> None:
    """Call ``run_once`` until ``stop`` is set.

    An error rolled its transaction back, so nothing is half done: a store error (a
    lost connection, a deadlock victim) or anything else is logged and the loop tries
    again after a pause instead of leaving the work to nobody.
    """
    while not stop.is_set():
        try:
            done = run_once()
        except Exception:
            log.exception("worker step failed; retrying")
            done = 0
        if done == 0:
            stop.wait(idle_seconds)
