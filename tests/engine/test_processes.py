"""Several OS processes sending to one session on PostgreSQL: no event is lost."""

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


@pytest.mark.postgres
def test_processes_sending_to_one_session_lose_no_event(
    make_store_url: MakeStoreUrl, tmp_path: Path
) -> None:
    url = make_store_url("postgres")
    flow_file = tmp_path / "counter.yaml"
    flow_file.write_text(COUNTER_FLOW)
    engine = Engine(FlowRegistry([load_flow(flow_file)]), url, ManualClock())
    sid = engine.create_session(create_request(flow="counter")).session_id
    processes, per_process = 3, 40
    senders = [
        subprocess.Popen(
            [sys.executable, "-c", SENDER, url, str(flow_file), sid, f"p{n}", str(per_process)],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(processes)
    ]
    for sender in senders:
        _, err = sender.communicate(timeout=120)
        assert sender.returncode == 0, err
    history = engine.history(sid)
    assert [e.seq for e in history] == list(range(1, processes * per_process + 2))
    assert {e.event_id for e in history[1:]} == {
        f"p{n}-{i}" for n in range(processes) for i in range(per_process)
    }
    engine.store.close()
