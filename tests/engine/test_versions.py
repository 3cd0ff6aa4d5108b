"""Flow versions: sessions keep their version, move only through a declared map.

v1 is the shipped deposit flow. v2 texts are edits of it, as a merchant would make.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flowengine.clock import ManualClock
from flowengine.engine import Engine, EventInput
from flowengine.errors import FlowEngineError, FlowVersionConflict, TransitionNotAllowed
from flowengine.flows import FlowRegistry
from flowengine.spec import load_flow
from tests.conftest import FLOWS, ROOT, MakeStoreUrl
from tests.factories import create_request

V1 = (FLOWS / "deposit.yaml").read_text()
PAYMENT = {"units": 25_000_000, "txHash": "0x" + "aa" * 32}
DELIVERED = {"units": 25_000_000, "txHash": "0x" + "bb" * 32}


def v2(upgrade: str = "") -> str:
    """v2 renames 'delivered' to 'confirming' (same role), with an optional upgrade block."""
    text = V1.replace("version: 1\n", "version: 2\n", 1)
    text = text.replace("outcomes: {done: delivered,", "outcomes: {done: confirming,")
    text = text.replace(
        "  delivered:\n    label: Delivered, confirming", "  confirming:\n    label: Confirming"
    )
    return text + upgrade


MIGRATE = """
upgrade:
  from: 1
  migrate: {created: created, amount_selected: amount_selected, paid: paid, delivered: confirming}
"""


def engine_with(text: str, store_url: str, clock: ManualClock) -> Engine:
    return Engine(FlowRegistry([load_flow("flows/deposit.yaml", text=text)]), store_url, clock)


def redeployed(engine: Engine, text: str, store_url: str, clock: ManualClock) -> Engine:
    """The engine after flows/deposit.yaml became ``text``: a restarted process on SQL
    stores (nothing may be lost in between), the same engine for a memory store."""
    if store_url.startswith("memory"):
        engine.flows.add(load_flow("flows/deposit.yaml", text=text))
        return engine
    engine.store.close()
    return engine_with(text, store_url, clock)


def test_a_session_stays_on_its_version_when_the_new_one_is_pinned(
    store_url: str, clock: ManualClock
) -> None:
    first = engine_with(V1, store_url, clock)
    sid = first.create_session(create_request()).session_id
    first.send(sid, "payment_detected", PAYMENT)
    second = redeployed(first, v2(), store_url, clock)  # v2 is pinned by default
    assert second.send(sid, "evm.deliver.done", DELIVERED).state == "delivered"  # v1's name
    assert second.record(sid).flow_version == "1"
    new = second.create_session(create_request()).session_id
    assert second.record(new).flow_version == "2"


def test_a_declared_map_moves_a_session_at_its_next_event(
    store_url: str, clock: ManualClock
) -> None:
    first = engine_with(V1, store_url, clock)
    sid = first.create_session(create_request()).session_id
    first.send(sid, "payment_detected", PAYMENT)
    first.send(sid, "evm.deliver.done", DELIVERED)  # in 'delivered' on v1
    upgraded = redeployed(first, v2(MIGRATE), store_url, clock)
    done = upgraded.send(sid, "evm.settle.done")
    assert done.state == "completed"
    history = upgraded.history(sid)
    migration = history[-2]
    assert (migration.event, migration.source, migration.target) == (
        "flow.migrated",
        "delivered",
        "confirming",
    )
    assert (migration.meta["from_version"], migration.meta["to_version"]) == ("1", "2")
    assert upgraded.record(sid).flow_version == "2"
    assert [e.seq for e in history] == list(range(1, len(history) + 1))


def test_an_event_the_new_version_refuses_leaves_the_session_where_it_was(
    store_url: str, clock: ManualClock
) -> None:
    """Refused means nothing written, alone or in a group commit: not even the move to
    the new version (send_many commits the batch's other events)."""
    first = engine_with(V1, store_url, clock)
    alone, grouped, other = (first.create_session(create_request()).session_id for _ in "abc")
    upgraded = redeployed(first, v2(MIGRATE), store_url, clock)
    with pytest.raises(TransitionNotAllowed):
        upgraded.send(alone, "evm.settle.done")  # 'created' takes no settle outcome
    results = upgraded.send_many(
        [EventInput(grouped, "evm.settle.done"), EventInput(other, "payment_detected", PAYMENT)]
    )
    assert isinstance(results[0], TransitionNotAllowed)
    for sid in (alone, grouped):
        assert upgraded.record(sid).flow_version == "1"
        assert [e.event for e in upgraded.history(sid)] == ["session.created"]
    assert upgraded.record(other).flow_version == "2"  # taken: moved, then applied
    assert [e.event for e in upgraded.history(other)] == [
        "session.created",
        "flow.migrated",
        "payment_detected",
    ]


def test_an_unmapped_state_keeps_the_session_pinned(store_url: str, clock: ManualClock) -> None:
    engine = engine_with(V1, store_url, clock)
    sid = engine.create_session(create_request()).session_id
    engine.send(sid, "payment_detected", PAYMENT)
    engine.flows.add(load_flow("flows/deposit.yaml", text=v2(MIGRATE.replace(" paid: paid,", ""))))
    assert engine.send(sid, "evm.deliver.done", DELIVERED).state == "delivered"
    assert engine.record(sid).flow_version == "1"


def test_a_changed_file_under_an_unchanged_version_is_refused(
    store_url: str, clock: ManualClock
) -> None:
    if store_url.startswith("memory"):
        pytest.skip("two engines share a store only on SQL backends")
    engine_with(V1, store_url, clock).create_session(create_request())
    edited = V1.replace("label: Waiting for the payer", "label: Waiting for you")
    with pytest.raises(FlowVersionConflict, match="needs a new 'version:'"):
        engine_with(edited, store_url, clock).create_session(create_request())
    with pytest.raises(FlowVersionConflict):
        FlowRegistry([load_flow("a.yaml", text=V1), load_flow("b.yaml", text=edited)])


EVERY_OLDER = (
    "\nupgrade:\n  from: '*'\n"
    "  migrate: {created: created, amount_selected: amount_selected, paid: paid}\n"
)


def versioned(version: str) -> str:
    """The deposit flow as ``version``, taking over every older version's sessions."""
    label = f"label: Waiting for the payer ({version})"
    text = V1.replace("version: 1\n", f"version: '{version}'\n", 1)
    return text.replace("label: Waiting for the payer", label) + EVERY_OLDER


def releases(store_url: str, clock: ManualClock, *versions: str) -> list[Engine]:
    """Processes of different releases sharing one store: an engine per version."""
    if store_url.startswith("memory"):
        pytest.skip("two engines share a store only on SQL backends")
    return [engine_with(versioned(version), store_url, clock) for version in versions]


def test_a_process_still_on_an_older_version_does_not_move_sessions_back(
    store_url: str, clock: ManualClock
) -> None:
    # A rolling deploy (or a rollback): processes on v2 and v3 share the store, both
    # saying upgrade from "*". Only older versions are taken over, so a v3 session
    # stays on v3 whichever process handles its next event.
    on_v2, on_v3 = releases(store_url, clock, "2", "3")
    sid = on_v2.create_session(create_request(amount=None)).session_id
    on_v3.send(sid, "select_amount")  # v2 -> v3: older, taken over
    assert on_v3.record(sid).flow_version == "3"
    on_v2.send(sid, "payment_detected", PAYMENT)  # not moved back to v2
    assert on_v2.record(sid).flow_version == "3"
    assert on_v3.send(sid, "evm.deliver.done", DELIVERED).state == "delivered"
    migrations = [e for e in on_v3.history(sid) if e.event == "flow.migrated"]
    assert len(migrations) == 1


def test_an_older_process_that_never_wrote_its_version_does_not_take_sessions_back(
    store_url: str, clock: ManualClock
) -> None:
    # The v2 process runs only workers, so the store never saw v2 before v3 created
    # this session. It used to count as the newest and move the session back to v2
    # for good (the v3 process then saw v2 as newer still).
    on_v2, on_v3 = releases(store_url, clock, "2", "3")
    sid = on_v3.create_session(create_request(amount=None)).session_id
    on_v2.send(sid, "select_amount")
    on_v3.send(sid, "payment_detected", PAYMENT)
    assert on_v3.record(sid).flow_version == "3"
    assert [e.event for e in on_v3.history(sid)] == [
        "session.created",
        "select_amount",
        "payment_detected",
    ]


def test_versions_that_are_not_numbers_are_ordered_as_the_store_saw_them(
    store_url: str, clock: ManualClock
) -> None:
    # "2026-12" is older than "2027-01" because the store saw it first; a process on
    # a version the store has not seen takes nothing over until it has written it.
    on_old, on_new = releases(store_url, clock, "2026-12", "2027-01")
    sid = on_old.create_session(create_request(amount=None)).session_id
    on_new.send(sid, "select_amount")
    assert on_new.record(sid).flow_version == "2026-12"  # 2027-01 not in the store yet
    clock.advance(60)
    on_new.create_session(create_request())  # now it is, seen after 2026-12
    on_new.send(sid, "payment_detected", PAYMENT)
    assert on_new.record(sid).flow_version == "2027-01"
    on_old.send(sid, "evm.deliver.done", DELIVERED)
    assert on_old.record(sid).flow_version == "2027-01"  # not moved back


SENDER = textwrap.dedent(
    """
    import sys
    from flowengine.engine import Engine
    from flowengine.flows import FlowRegistry

    store_url, flows_dir, sid, event = sys.argv[1:5]
    engine = Engine(FlowRegistry.from_directory(flows_dir), store_url)
    payload = {"units": 25_000_000, "txHash": "0x" + "cc" * 32}
    print(engine.send(sid, event, payload).state)
    """
)


@pytest.mark.postgres
def test_processes_with_different_flows_run_each_session_on_its_own_version(
    make_store_url: MakeStoreUrl, tmp_path: Path
) -> None:
    url = make_store_url("postgres")
    old_dir, new_dir = tmp_path / "old", tmp_path / "new"
    old_dir.mkdir()
    new_dir.mkdir()
    (old_dir / "deposit.yaml").write_text(V1)
    (new_dir / "deposit.yaml").write_text(v2())
    on_v1 = Engine(FlowRegistry.from_directory(old_dir), url).create_session(create_request())
    on_v2 = Engine(FlowRegistry.from_directory(new_dir), url).create_session(create_request())

    def send(flows_dir: Path, sid: str, event: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", SENDER, url, str(flows_dir), sid, event],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    # each process feeds the OTHER version's session: it must still run that version
    assert send(new_dir, on_v1.session_id, "payment_detected") == "paid"
    assert send(new_dir, on_v1.session_id, "evm.deliver.done") == "delivered"  # v1 state
    assert send(old_dir, on_v2.session_id, "payment_detected") == "paid"
    assert send(old_dir, on_v2.session_id, "evm.deliver.done") == "confirming"  # v2 state


def test_a_flows_directory_with_two_files_of_one_flow_is_refused(tmp_path: Path) -> None:
    # deposit.v2.yaml sorts before deposit.yaml: a file name must not decide which
    # version runs, and a candidate must not go live by sitting next to the current one.
    (tmp_path / "deposit.yaml").write_text(V1)
    (tmp_path / "deposit.v2.yaml").write_text(v2())
    with pytest.raises(FlowEngineError, match="two files of flow 'deposit'"):
        FlowRegistry.from_directory(tmp_path)


def test_the_choices_offered_by_hand_are_those_of_the_version_that_takes_over(
    store_url: str, clock: ManualClock
) -> None:
    # v2 takes v1's sessions over at their next event, and lets a merchant withdraw a
    # session in 'created'; offered v1's list, a person could not pick that, and an
    # event only v1 takes would be refused (the event is applied in v2 or not at all).
    engine = engine_with(V1, store_url, clock)
    sid = engine.create_session(create_request()).session_id
    v2_text = V1.replace("version: 1\n", "version: 2\n", 1) + (
        "  - {event: withdrawn, from: created, to: expired}\n"
        "upgrade:\n  from: 1\n  migrate: {created: created}\n"
    )
    engine = redeployed(engine, v2_text, store_url, clock)
    offered = {choice.event for choice in engine.allowed_events(sid)}
    assert "withdrawn" in offered
    engine.override(sid, "withdrawn", reason="merchant withdrew the order", actor="ops")
    assert (engine.get(sid).status, engine.record(sid).flow_version) == ("expired", "2")
