"""The engine keeps no session in memory: stored sessions cost disk, not RAM."""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

from flowengine.clock import ManualClock
from flowengine.engine import Engine
from flowengine.flows import FlowRegistry
from tests.conftest import FLOWS
from tests.factories import create_request

PAYMENT = {"units": 25_000_000, "txHash": "0x" + "aa" * 32}


def test_memory_does_not_grow_with_the_number_of_stored_sessions(tmp_path: Path) -> None:
    engine = Engine(
        FlowRegistry.from_directory(FLOWS), f"sqlite:///{tmp_path / 's.db'}", ManualClock()
    )

    def add_sessions(count: int) -> None:
        for _ in range(count):
            sid = engine.create_session(create_request()).session_id
            engine.send(sid, "payment_detected", PAYMENT)

    add_sessions(100)  # warm up pools and caches
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        add_sessions(600)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        engine.store.close()
    # a stored session is a few KiB of JSON; keeping 600 of them would be well over 1 MiB
    assert grown < 256 * 1024, f"memory grew by {grown / 1024:.0f} KiB for 600 sessions"
