"""Run a worker's ``run_once`` until told to stop, sleeping only when idle."""

from __future__ import annotations

import threading
from collections.abc import Callable


def run_until(stop: threading.Event, run_once: Callable[[], int], idle_seconds: float) -> None:
    while not stop.is_set():
        if run_once() == 0:
            stop.wait(idle_seconds)
