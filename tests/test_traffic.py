"""Traffic from the event log: edge counts, median stays, migrations; heat diagrams.

Sessions are driven through the real engine, effect runner (with the ledger adapter)
and timer worker on every store backend, with a manual clock, so every figure below is
known exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from flowengine.adapters.ledger import LedgerAdapter
from flowengine.clock import ManualClock
from flowengine.diagrams import render
from flowengine.engine import Engine, EventInput
from flowengine.sessions.models import DEFAULT_EXPIRES_IN
from flowengine.spec import FlowSpec, load_flow
from flowengine.store import EventRecord
from flowengine.traffic import (
    Traffic,
    format_seconds,
    session_path,
    traffic_from_events,
    traffic_from_store,
)
from flowengine.workers import EffectRunner, TimerWorker
from tests.conftest import FLOWS
from tests.factories import create_request

V1_TEXT = (FLOWS / "deposit.yaml").read_text()
PAYMENT = {"units": 25_000_000, "txHash": "0x" + "aa" * 32}
V2_TEXT = (
    V1_TEXT.replace("version: 1\n", "version: 2\n", 1)
    .replace("outcomes: {done: delivered,", "outcomes: {done: confirming,")
    .replace(
        "  delivered:\n    label: Delivered, confirming", "  confirming:\n    label: Confirming"
    )
    + "\nupgrade:\n  from: 1\n  migrate: {created: created, paid: paid, delivered: confirming}\n"
)
HIGHLIGHT = "#1d5fd1"
EXPIRES_IN = DEFAULT_EXPIRES_IN


@dataclass
class Driven:
    engine: Engine
    clock: ManualClock
    runner: EffectRunner
    sid: dict[str, str]


@pytest.fixture
def runner(engine: Engine, tmp_path: Path) -> tuple[EffectRunner, LedgerAdapter]:
    ledger = LedgerAdapter(tmp_path / "ledger.db")
    adapters = {"evm.deliver": ledger, "evm.settle": ledger, "evm.refund": ledger}
    return EffectRunner(engine, adapters), ledger


@pytest.fixture
def driven(
    engine: Engine, clock: ManualClock, runner: tuple[EffectRunner, LedgerAdapter]
) -> Driven:
    """Three deposit sessions with known timings (seconds after they were created):

    * ``done``: paid at 60, delivered at 70, settled at 100 → completed;
    * ``bounced``: paid at 100, delivery reverted at 120, refunded at 125 → bounced;
    * ``expired``: amount selected at 30, expired by its timer at ``EXPIRES_IN``.
    """
    effects, ledger = runner
    sid = {
        "done": engine.create_session(create_request()).session_id,
        "bounced": engine.create_session(create_request()).session_id,
        "expired": engine.create_session(create_request(amount=None)).session_id,
    }
    clock.advance(30)
    engine.send(sid["expired"], "select_amount")
    clock.advance(30)  # 60
    engine.send(sid["done"], "payment_detected", PAYMENT)
    clock.advance(10)  # 70
    assert effects.run_once() == 1  # evm.deliver done
    clock.advance(30)  # 100
    assert effects.run_once() == 1  # evm.settle done
    engine.send(sid["bounced"], "payment_detected", PAYMENT)
    ledger.script("evm.deliver", "failed")
    clock.advance(20)  # 120
    assert effects.run_once() == 1  # evm.deliver failed
    clock.advance(5)  # 125
    assert effects.run_once() == 1  # evm.refund done
    clock.advance(EXPIRES_IN - 125)  # the expiry of all three
    assert TimerWorker(engine).run_once() == 1
    states = {name: engine.record(s).state for name, s in sid.items()}
    assert states == {"done": "completed", "bounced": "bounced", "expired": "expired"}
    return Driven(engine, clock, effects, sid)


def deposit() -> FlowSpec:
    return load_flow(FLOWS / "deposit.yaml")


def test_edge_counts_come_from_consecutive_log_rows(driven: Driven) -> None:
    traffic = traffic_from_store(driven.engine.store, "deposit")

    assert traffic.sessions == 3
    assert dict(traffic.edges) == {
        ("", "session.created", "created"): 3,
        ("created", "payment_detected", "paid"): 2,
        ("created", "select_amount", "amount_selected"): 1,
        ("paid", "evm.deliver.done", "delivered"): 1,
        ("paid", "evm.deliver.failed", "refunding"): 1,
        ("delivered", "evm.settle.done", "completed"): 1,
        ("refunding", "evm.refund.done", "bounced"): 1,
        ("amount_selected", "expire", "expired"): 1,
    }
    assert (traffic.migrations, traffic.unapplied) == (0, 0)


def test_counts_match_the_drawn_arrows_outcomes_and_timers_too(driven: Driven) -> None:
    traffic = traffic_from_store(driven.engine.store, "deposit")
    spec = deposit()

    taken = {
        (edge.kind, edge.source, edge.event): count
        for edge, count in zip(spec.edges(), traffic.edge_counts(spec), strict=True)
        if count
    }
    assert taken == {
        ("event", "created", "payment_detected"): 2,
        ("event", "created", "select_amount"): 1,
        ("outcome", "paid", "evm.deliver.done"): 1,
        ("outcome", "paid", "evm.deliver.failed"): 1,
        ("outcome", "delivered", "evm.settle.done"): 1,
        ("outcome", "refunding", "evm.refund.done"): 1,
        ("timer", "amount_selected", "expire"): 1,
    }
    assert traffic.started(spec) == 3
    assert traffic.unmatched(spec) == 0


def test_median_time_spent_in_each_state(driven: Driven) -> None:
    traffic = traffic_from_store(driven.engine.store, "deposit")

    assert dict(traffic.median_seconds) == {
        "created": 60.0,  # 60, 100 and 30
        "paid": 15.0,  # 10 and 20
        "delivered": 30.0,
        "refunding": 5.0,
        "amount_selected": float(EXPIRES_IN - 30),
    }
    assert traffic.stays["created"] == 3
    assert "completed" not in traffic.median_seconds  # nobody leaves a final state


def test_rows_logged_without_a_transition_are_left_out(driven: Driven) -> None:
    late = EventInput(driven.sid["done"], "evm.deliver.done", PAYMENT, event_id="late")
    with driven.engine.store.transaction() as tx:
        driven.engine.record_unapplied(tx, late, "the session had moved on")
    before = traffic_from_store(driven.engine.store, "deposit")

    assert before.unapplied == 1
    assert before.count("completed", "evm.deliver.done", "completed") == 0
    assert before.count("paid", "evm.deliver.done", "delivered") == 1


def test_a_migration_is_counted_apart_and_the_stay_goes_on_under_the_new_name(
    engine: Engine, clock: ManualClock, runner: tuple[EffectRunner, LedgerAdapter]
) -> None:
    effects, _ = runner
    sid = engine.create_session(create_request()).session_id
    clock.advance(60)
    engine.send(sid, "payment_detected", PAYMENT)
    clock.advance(10)
    effects.run_once()  # delivered (v1), evm.settle requested
    v2 = load_flow("flows/deposit.yaml", text=V2_TEXT)
    engine.flows.add(v2)
    clock.advance(40)
    effects.run_once()  # settle done: migrates delivered → confirming, then completes
    assert engine.record(sid).state == "completed"

    traffic = traffic_from_store(engine.store, "deposit")

    assert traffic.migrations == 1
    assert not [key for key in traffic.edges if key[1] == "flow.migrated"]
    assert traffic.count("confirming", "evm.settle.done", "completed") == 1
    assert traffic.median_seconds["confirming"] == 40.0  # entered as 'delivered' at 70 s
    assert "delivered" not in traffic.median_seconds
    assert traffic.unmatched(v2) == 1  # paid → delivered is v1's arrow
    assert traffic.unmatched(deposit()) == 1  # and confirming → completed is v2's

    history = engine.history(sid)
    states, marks = session_path(history)
    assert states == ["created", "paid", "delivered", "confirming", "completed"]
    assert marks == [("confirming", "migrated v1 → v2")]
    states, marks = session_path(history, v2)
    assert states == ["created", "paid", "confirming", "completed"]  # read in v2's names
    assert marks == [("confirming", "migrated v1 → v2")]

    dot = render(v2, "dot", highlight=states, migrations=marks).decode()
    confirming = _line(dot, "confirming")
    assert "migrated v1 → v2" in confirming
    assert f'color="{HIGHLIGHT}"' in _line(dot, "paid -> confirming")
    assert f'color="{HIGHLIGHT}"' in _line(dot, "confirming -> completed")

    title = _title(render(v2, "dot", traffic=traffic).decode())
    assert "1 migration between versions" in title
    assert "1 step of other versions not drawn" in title


def test_session_path_leaves_out_unapplied_rows_and_marks_on_the_old_version() -> None:
    rows = [
        _row(1, "session.created", "", "created"),
        _row(2, "payment_detected", "created", "paid"),
        _row(3, "evm.deliver.done", "paid", "paid", meta={"applied": False}),
        _row(4, "flow.migrated", "paid", "paying", meta={"from_version": "1", "to_version": "3"}),
        _row(5, "evm.deliver.done", "paying", "delivered"),
    ]

    assert session_path(rows) == (
        ["created", "paid", "paying", "delivered"],
        [("paying", "migrated v1 → v3")],
    )
    # Drawn on v1, which has no 'paying': the mark goes where the session was.
    assert session_path(rows, deposit()) == (
        ["created", "paid", "delivered"],
        [("paid", "migrated v1 → v3")],
    )


def test_traffic_from_events_in_any_order() -> None:
    rows = [
        _row(2, "payment_detected", "created", "paid", at=90_000),
        _row(1, "session.created", "", "created", at=0),
        _row(1, "session.created", "", "created", at=0, session="b"),
    ]

    traffic = traffic_from_events("deposit", rows)

    assert traffic.sessions == 2
    assert traffic.median_seconds == {"created": 90.0}
    assert traffic.busiest() == 1  # starts are not arrows of the flow


# -- heat diagrams --------------------------------------------------------------------------


def _line(dot: str, start: str) -> str:
    found = [line.strip() for line in dot.splitlines() if line.strip().startswith(start + " [")]
    assert len(found) == 1, f"{start!r}: {found}"
    return found[0]


def _title(dot: str) -> str:
    """The graph's own attributes (its title among them)."""
    (line,) = [line.strip() for line in dot.splitlines() if "labeljust=" in line]
    return line


def _penwidth(line: str) -> float:
    return float(line.split("penwidth=")[1].split()[0].strip('"]'))


def test_a_heat_diagram_labels_arrows_with_counts_and_states_with_stays(driven: Driven) -> None:
    traffic = traffic_from_store(driven.engine.store, "deposit")

    dot = render(deposit(), "dot", traffic=traffic).decode()

    busy = _line(dot, "created -> paid")
    assert "payment_detected [amount_fixed]<BR/>" in busy
    assert "<B>2×</B>" in busy
    assert "<B>1×</B>" in _line(dot, "amount_selected -> expired")  # a timer arrow
    assert "at expiry" in _line(dot, "amount_selected -> expired")
    assert "<B>1×</B>" in _line(dot, "paid -> refunding")  # an outcome arrow
    assert "<B>3×</B>" in _line(dot, "__start__ -> created")
    idle = _line(dot, "review -> completed")
    assert "×" not in idle
    assert 'color="#c3cad3"' in idle
    assert _penwidth(busy) > _penwidth(_line(dot, "paid -> refunding")) > _penwidth(idle)
    assert "stayed 1m (median of 3)" in _line(dot, "created")
    assert "stayed 15s (median of 2)" in _line(dot, "paid")
    assert "stayed" not in _line(dot, "completed")
    assert "traffic of 3 sessions" in _title(dot)


def test_a_heat_diagram_renders_as_svg(driven: Driven) -> None:
    traffic = traffic_from_store(driven.engine.store, "deposit")

    svg = render(deposit(), "svg", traffic=traffic).decode()

    assert "<svg" in svg
    assert ">2×</text>" in svg
    assert "stayed 15s (median of 2)" in svg


def test_without_traffic_or_marks_the_drawing_is_unchanged() -> None:
    spec = deposit()
    plain = render(spec, "dot")

    assert render(spec, "dot", traffic=None, migrations=()) == plain
    assert render(spec, "dot", traffic=Traffic("deposit")) != plain
    with_nothing = render(spec, "dot", traffic=Traffic("deposit")).decode()
    assert "traffic of 0 sessions" in with_nothing
    assert "×" not in with_nothing


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (2.5, "2.5s"),
        (45, "45s"),
        (60, "1m"),
        (200, "3m 20s"),
        (7500, "2h 5m"),
        (3 * 86_400 + 4 * 3600, "3d 4h"),
    ],
)
def test_format_seconds(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text


def _row(
    seq: int,
    event: str,
    source: str,
    target: str,
    *,
    at: int = 0,
    session: str = "a",
    meta: dict[str, object] | None = None,
) -> EventRecord:
    return EventRecord(
        session_id=session,
        seq=seq,
        event_id=f"{session}:{seq}",
        event=event,
        source=source,
        target=target,
        created_at=at,
        meta=meta or {},
    )
