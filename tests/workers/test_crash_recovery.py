"""A runner SIGKILLed mid-effect: the next runner finishes the work, paying once.

The first runner is a real separate process that claims the delivery and is killed
(SIGKILL: no cleanup, no exception handlers) either before or after its adapter acted.
The ledger is a file, so what the dead process did to "the outside world" stays done.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flowengine.adapters.ledger import LedgerAdapter
from flowengine.clock import ManualClock, SystemClock
from flowengine.engine import Engine
from flowengine.flows import FlowRegistry
from flowengine.workers import EffectRunner
from tests.conftest import FLOWS, ROOT
from tests.factories import create_request

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from flowengine.adapters.ledger import LedgerAdapter
    from flowengine.engine import Engine
    from flowengine.flows import FlowRegistry
    from flowengine.workers import EffectRunner

    store_url, ledger_path, flows, when = sys.argv[1:5]
    ledger = LedgerAdapter(ledger_path)

    class DiesMidEffect:
        def perform(self, call):
            if when == "after":
                ledger.perform(call)
            os.kill(os.getpid(), signal.SIGKILL)

        def status_of(self, key):
            return ledger.status_of(key)

    engine = Engine(FlowRegistry.from_directory(flows), store_url)
    EffectRunner(engine, {"evm.deliver": DiesMidEffect()}, lease_ms=30_000).run_once()
    """
)


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_killed_runner_is_recovered_with_the_effect_performed_once(
    store_url: str, tmp_path: Path, when: str
) -> None:
    if store_url.startswith("memory"):
        pytest.skip("a memory store is not shared with another process")
    clock = ManualClock(SystemClock().now_ms())
    engine = Engine(FlowRegistry.from_directory(FLOWS), store_url, clock)
    ledger = LedgerAdapter(tmp_path / "ledger.db")
    sid = engine.create_session(create_request()).session_id
    engine.send(sid, "payment_detected", {"units": 25_000_000, "txHash": "0x" + "aa" * 32})

    child = subprocess.run(
        [sys.executable, "-c", CHILD, store_url, str(tmp_path / "ledger.db"), str(FLOWS), when],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    with engine.store.transaction() as tx:
        (claimed,) = tx.effects(sid)
    assert (claimed.status, claimed.attempts) == ("running", 1)  # the dead runner's claim
    assert len(ledger.transfers()) == (1 if when == "after" else 0)

    runner = EffectRunner(engine, {"evm.deliver": ledger, "evm.settle": ledger})
    assert runner.run_once() == 0  # the lease still protects the claim
    clock.advance(90)  # past the lease, whatever the child's own clock read
    while runner.run_once():
        pass

    assert engine.get(sid).status == "completed"
    assert [effect for _, effect, _ in ledger.transfers()] == ["evm.deliver", "evm.settle"]
    with engine.store.transaction() as tx:
        attempts = [a.outcome for a in tx.attempts(claimed.key)]
    # The dead call left its start on record and no answer; the recovery, both.
    assert attempts == ["started", "started", "ok"]
    engine.store.close()
