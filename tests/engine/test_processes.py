"""Several OS processes sending to one session: no event is lost.

On PostgreSQL they wait for the session's row lock; on SQLite each plans its send
outside the database's write lock and, when another process got in first, applies it
again under the lock (flowengine.planning): with one session shared by all, that is
nearly every send.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flowengine.clock import ManualClock
from flowengine.engine import Engine
from flowengine.flows import FlowRegistry
from flowengine.spec import load_flow
from tests.conftest import ROOT, MakeStoreUrl
from tests.engine.test_engine import COUNTER_FLOW
from tests.factories import create_request

SENDER = textwrap.dedent(
    """
    import sys
    from flowengine.engine import Engine
    from flowengine.flows import FlowRegistry
    from flowengine.spec import load_flow

    store_url, flow_file, sid, name, count = sys.argv[1:6]
    engine = Engine(FlowRegistry([load_flow(flow_file)]), store_url)
    for i in range(int(count)):
        engine.send(sid, "tick", event_id=f"{name}-{i}")
    """
)


KINDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]

BATCH_SENDER = textwrap.dedent(
    """
    import sys
    from flowengine.engine import Engine, EventInput
    from flowengine.flows import FlowRegistry
    from flowengine.spec import load_flow

    store_url, flow_file, ids, name, count = sys.argv[1:6]
    engine = Engine(FlowRegistry([load_flow(flow_file)]), store_url)
    for i in range(int(count)):
        batch = [EventInput(sid, "tick", event_id=f"{name}-{i}") for sid in ids.split(",")]
        assert all(not isinstance(r, Exception) for r in engine.send_many(batch))
    """
)


def ticks_from_processes(
    url: str, tmp_path: Path, sender: str, sessions: int, processes: int, count: int
) -> None:
    """``processes`` OS processes run ``sender`` at once, each sending ``count`` ticks
    (ids ``p<n>-<i>``) to the same ``sessions``; every session must end with every
    tick logged once, in an unbroken sequence."""
    flow_file = tmp_path / "counter.yaml"
    flow_file.write_text(COUNTER_FLOW)
    engine = Engine(FlowRegistry([load_flow(flow_file)]), url, ManualClock())
    ids = [
        engine.create_session(create_request(flow="counter")).session_id for _ in range(sessions)
    ]
    senders = [
        subprocess.Popen(
            [sys.executable, "-c", sender, url, str(flow_file), ",".join(ids), f"p{n}", str(count)],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(processes)
    ]
    for process in senders:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    for sid in ids:
        history = engine.history(sid)
        assert [e.seq for e in history] == list(range(1, processes * count + 2))
        assert {e.event_id for e in history[1:]} == {
            f"p{n}-{i}" for n in range(processes) for i in range(count)
        }
    engine.store.close()


@pytest.mark.parametrize("kind", KINDS)
def test_processes_sending_to_one_session_lose_no_event(
    kind: str, make_store_url: MakeStoreUrl, tmp_path: Path
) -> None:
    ticks_from_processes(make_store_url(kind), tmp_path, SENDER, 1, processes=3, count=40)


@pytest.mark.parametrize("kind", KINDS)
def test_processes_group_committing_to_shared_sessions_lose_no_event(
    kind: str, make_store_url: MakeStoreUrl, tmp_path: Path
) -> None:
    """Every batch of every process touches every session: on SQLite a plan is kept
    only for the sessions no other process moved since it was made."""
    ticks_from_processes(make_store_url(kind), tmp_path, BATCH_SENDER, 8, processes=3, count=25)
