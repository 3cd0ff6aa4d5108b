"""The engine on every store: create, send, idempotency, atomicity, group commit."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from flowengine.clock import ManualClock
from flowengine.engine import Engine, EventInput, SendResult
from flowengine.errors import (
    IdempotencyConflict,
    SessionNotFound,
    StoreError,
    TransitionNotAllowed,
    ValidationError,
)
from flowengine.flows import FlowRegistry
from flowengine.spec import load_flow
from tests.factories import create_request

PAYMENT = {"units": 25_000_000, "txHash": "0x" + "ab" * 32}


def test_a_fixed_amount_session_runs_its_whole_lifecycle(engine: Engine) -> None:
    session = engine.create_session(create_request(amount="25.00"))
    assert session.status == "created"
    assert len(session.session_id) == 32

    engine.send(session.session_id, "payment_detected", PAYMENT)
    engine.send(
        session.session_id, "evm.deliver.done", {"units": 25_000_000, "txHash": "0x" + "cd" * 32}
    )
    done = engine.send(session.session_id, "evm.settle.done")

    assert done.state == "completed"
    assert done.session.status == "completed"
    assert done.session.amounts.received == "25.00"
    assert done.session.amounts.delivered == "25.00"
    history = engine.history(session.session_id)
    assert [(e.source, e.target) for e in history] == [
        ("", "created"),
        ("created", "paid"),
        ("paid", "delivered"),
        ("delivered", "completed"),
    ]
    assert [e.seq for e in history] == [1, 2, 3, 4]


def test_each_step_writes_its_outbox_rows_with_the_state(engine: Engine) -> None:
    session = engine.create_session(create_request())
    engine.send(session.session_id, "payment_detected", PAYMENT)
    with engine.store.transaction() as tx:
        effects = tx.effects(session.session_id)
        webhooks = tx.webhooks(session.session_id)
        timers = tx.timers(session.session_id)
    assert [(e.effect, e.key) for e in effects] == [
        ("evm.deliver", f"{session.session_id}:evm.deliver:2")
    ]
    assert [w.type for w in webhooks] == ["session.processing"]
    # the webhook carries the session as it was at that event, not a later read
    assert webhooks[0].body["data"]["session"]["status"] == "paid"
    assert [(t.event, t.state) for t in timers] == [("expire", "created")]


def test_a_payer_chosen_amount_goes_through_amount_selected(engine: Engine) -> None:
    session = engine.create_session(create_request(amount=None))
    with pytest.raises(TransitionNotAllowed):
        engine.send(session.session_id, "payment_detected", PAYMENT)
    engine.send(session.session_id, "select_amount", {"amountUnits": "10.00"})
    assert engine.send(session.session_id, "payment_detected", PAYMENT).state == "paid"


def test_a_refused_event_names_the_session_and_writes_nothing(engine: Engine) -> None:
    session = engine.create_session(create_request())
    with pytest.raises(TransitionNotAllowed) as refused:
        engine.send(session.session_id, "evm.settle.done", event_id="e1")
    assert session.session_id in str(refused.value)
    assert "'created'" in str(refused.value)
    assert "payment_detected" in refused.value.allowed
    assert len(engine.history(session.session_id)) == 1
    assert engine.get(session.session_id).status == "created"
    # the refused event id was not consumed either
    assert (
        engine.send(session.session_id, "payment_detected", PAYMENT, event_id="e1").state == "paid"
    )


def test_the_same_event_id_twice_is_a_no_op_returning_the_first_result(engine: Engine) -> None:
    session = engine.create_session(create_request())
    first = engine.send(session.session_id, "payment_detected", PAYMENT, event_id="chain:1")
    again = engine.send(session.session_id, "payment_detected", PAYMENT, event_id="chain:1")
    assert not first.duplicate
    assert again.duplicate
    assert again.event.seq == first.event.seq
    assert again.state == "paid"
    assert len(engine.history(session.session_id)) == 2


def test_a_retried_send_with_a_tuple_in_its_payload_is_the_same_event(engine: Engine) -> None:
    # A store gives tuples back as lists; the retry must still compare equal to the log.
    sid = engine.create_session(create_request()).session_id
    payload = {**PAYMENT, "logIndexes": (3, 4)}
    engine.send(sid, "payment_detected", payload, event_id="chain:1")
    again = engine.send(sid, "payment_detected", payload, event_id="chain:1")
    assert again.duplicate
    assert engine.history(sid)[1].payload["logIndexes"] == [3, 4]


def test_an_event_id_reused_for_another_event_is_a_conflict(engine: Engine) -> None:
    session = engine.create_session(create_request())
    engine.send(session.session_id, "payment_detected", PAYMENT, event_id="x")
    with pytest.raises(IdempotencyConflict):
        engine.send(session.session_id, "payment_detected", {"units": 1}, event_id="x")


def test_the_same_external_fact_reported_twice_counts_once(engine: Engine) -> None:
    session = engine.create_session(create_request())
    ref = "8453:0xabc:3"
    engine.send(session.session_id, "payment_detected", PAYMENT, external_ref=ref)
    again = engine.send(session.session_id, "payment_detected", PAYMENT, external_ref=ref)
    assert again.duplicate
    assert engine.get(session.session_id).amounts.received == "25.00"


def test_unknown_session_and_unknown_flow_are_clear_errors(engine: Engine) -> None:
    with pytest.raises(SessionNotFound):
        engine.send("0" * 32, "payment_detected", PAYMENT)
    with pytest.raises(ValidationError) as invalid:
        engine.create_session(create_request(flow="nope"))
    assert invalid.value.errors[0].param == "flow"


def test_group_commit_applies_many_sessions_in_one_transaction(engine: Engine) -> None:
    ids = [engine.create_session(create_request()).session_id for _ in range(5)]
    items = [EventInput(sid, "payment_detected", PAYMENT, event_id="p") for sid in ids]
    items.insert(2, EventInput(ids[0], "evm.settle.done"))  # refused: not in 'paid' yet
    results = engine.send_many(items)
    assert isinstance(results[2], TransitionNotAllowed)
    assert all(engine.get(sid).status == "paid" for sid in ids)


def test_group_commit_keeps_idempotency_across_and_within_batches(engine: Engine) -> None:
    """The batch is read up front (sessions and known event ids in one go); replays from
    an earlier batch, replays inside the batch, reused ids and unknown sessions still
    come out as they do one by one."""
    paid, fresh, other = (engine.create_session(create_request()).session_id for _ in range(3))
    engine.send(paid, "payment_detected", PAYMENT, event_id="pay")
    wrong = {"units": 1, "txHash": PAYMENT["txHash"]}
    results = engine.send_many(
        [
            EventInput(paid, "payment_detected", PAYMENT, event_id="pay"),  # replay
            EventInput(fresh, "payment_detected", PAYMENT, event_id="pay"),
            EventInput(fresh, "payment_detected", PAYMENT, event_id="pay"),  # replay, in batch
            EventInput(other, "payment_detected", wrong, event_id="x"),
            EventInput(other, "evm.deliver.done", PAYMENT, event_id="x"),  # id reused
            EventInput("0" * 32, "payment_detected", PAYMENT),
        ]
    )
    replay, first, again, _, reused, ghost = results
    assert isinstance(replay, SendResult)
    assert isinstance(first, SendResult)
    assert isinstance(again, SendResult)
    assert (replay.duplicate, first.duplicate, again.duplicate) == (True, False, True)
    assert again.event == first.event
    assert isinstance(reused, IdempotencyConflict)
    assert isinstance(ghost, SessionNotFound)
    assert [engine.get(sid).amounts.received for sid in (paid, fresh, other)] == [
        "25.00",
        "25.00",
        "0.000001",
    ]


COUNTER_FLOW = """
flowengine: 1
name: counter
version: 1
states:
  open: {initial: true}
  closed: {final: true}
transitions:
  - {event: tick, from: open, to: open}
  - {event: close, from: open, to: closed}
"""


def test_concurrent_senders_on_one_session_lose_no_event(store_url: str) -> None:
    flows = FlowRegistry([load_flow("counter.yaml", text=COUNTER_FLOW)])
    engine = Engine(flows, store_url, ManualClock())
    sid = engine.create_session(create_request(flow="counter")).session_id
    threads, per_thread = 4, 25

    def sender(n: int) -> None:
        for i in range(per_thread):
            engine.send(sid, "tick", event_id=f"t{n}-{i}")

    workers = [threading.Thread(target=sender, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    history = engine.history(sid)
    assert [e.seq for e in history] == list(range(1, threads * per_thread + 2))
    assert len({e.event_id for e in history}) == len(history)
    assert engine.record(sid).seq == threads * per_thread + 1
    engine.store.close()


def test_a_session_keeps_running_its_flow_version_after_flows_change(
    store_url: str, clock: ManualClock
) -> None:
    if store_url.startswith("memory"):
        pytest.skip("a memory store does not survive an engine restart")
    v1 = FlowRegistry([load_flow("counter.yaml", text=COUNTER_FLOW)])
    sid = Engine(v1, store_url, clock).create_session(create_request(flow="counter")).session_id
    v2_text = COUNTER_FLOW.replace("version: 1", "version: 2").replace(
        "- {event: close, from: open, to: closed}", "- {event: finish, from: open, to: closed}"
    )
    restarted = Engine(FlowRegistry([load_flow("counter.yaml", text=v2_text)]), store_url, clock)
    # v2 has no 'close', but this session was created on v1 and keeps running it
    assert restarted.send(sid, "close").state == "closed"


def test_a_different_fact_under_an_old_external_ref_is_a_conflict(engine: Engine) -> None:
    session = engine.create_session(create_request())
    ref = "8453:0xabc:3"
    engine.send(session.session_id, "payment_detected", PAYMENT, external_ref=ref)
    with pytest.raises(IdempotencyConflict, match="payment_detected"):
        engine.send(session.session_id, "evm.deliver.failed", external_ref=ref)


def test_a_malformed_amount_is_refused_without_stopping_the_batch(engine: Engine) -> None:
    ids = [engine.create_session(create_request()).session_id for _ in range(3)]
    items = [EventInput(sid, "payment_detected", PAYMENT) for sid in ids]
    items[1] = EventInput(ids[1], "payment_detected", {"units": "25000000"})
    results = engine.send_many(items)
    assert isinstance(results[1], ValidationError)
    assert results[1].errors[0].param == "payload.units"
    assert [engine.get(sid).status for sid in ids] == ["paid", "created", "paid"]


@pytest.mark.parametrize("payload", [{"units": 0, "txHash": "0x" + "ab" * 32}, {}])
def test_a_payment_of_nothing_is_refused(engine: Engine, payload: dict[str, object]) -> None:
    # A zero-value token transfer costs a spoofer only gas, and deposit accepts any
    # underpayment: it would deliver nothing and complete, the merchant told it was paid.
    sid = engine.create_session(create_request()).session_id
    with pytest.raises(ValidationError) as refused:
        engine.send(sid, "payment_detected", payload)
    assert [e.param for e in refused.value.errors] == ["payload.units"]
    assert (engine.get(sid).status, len(engine.history(sid))) == ("created", 1)


@pytest.mark.parametrize(
    ("payload", "meta", "param"),
    [
        ({**PAYMENT, "fee": Decimal("0.10")}, {}, "payload.fee"),
        ({**PAYMENT, "seenAt": datetime(2026, 1, 1, tzinfo=UTC)}, {}, "payload.seenAt"),
        ({**PAYMENT, "rate": float("nan")}, {}, "payload.rate"),
        ({**PAYMENT, "logs": [1, float("inf")]}, {}, "payload.logs[1]"),
        ({**PAYMENT, "byIndex": {3: "0xab"}}, {}, "payload.byIndex"),
        (PAYMENT, {"seen": {"a", "b"}}, "meta.seen"),
        # PostgreSQL refuses a NUL character in text and jsonb; SQLite and memory keep it.
        ({**PAYMENT, "memo": "a\x00b"}, {}, "payload.memo"),
        ({**PAYMENT, "memo": "\ud800"}, {}, "payload.memo"),  # a lone surrogate
        # jsonb gives 1e23 back as the integer 10**23: a retry would not compare equal.
        ({**PAYMENT, "gasPrice": 1e23}, {}, "payload.gasPrice"),
        (PAYMENT, {"note\x00": 1}, "meta"),
    ],
)
def test_a_value_a_store_could_not_keep_exactly_is_refused_naming_the_field(
    engine: Engine, payload: dict[str, object], meta: dict[str, object], param: str
) -> None:
    # A SQL store would give a Decimal or a datetime back as a string and a NaN as null,
    # while the memory store kept them: refused on every store, and nothing written.
    sid = engine.create_session(create_request()).session_id
    (refused,) = engine.send_many([EventInput(sid, "payment_detected", payload, meta=meta)])
    assert isinstance(refused, ValidationError)
    assert [e.param for e in refused.errors] == [param]
    assert len(engine.history(sid)) == 1
    assert engine.send(sid, "payment_detected", {**PAYMENT, "fee": "0.10"}).state == "paid"


def test_a_caller_cannot_pass_an_event_off_as_the_engines_own(engine: Engine) -> None:
    # "effect" ending in ":late" marks a late refund's own outcome, which is never
    # refunded again; "deferred" rows are left out when the log is reconciled.
    sid = engine.create_session(create_request()).session_id
    notes = {"effect": "evm.refund:3:late", "deferred": True, "source": "watcher-2"}
    (refused,) = engine.send_many([EventInput(sid, "payment_detected", PAYMENT, meta=notes)])
    assert isinstance(refused, ValidationError)
    assert [(e.param, e.code) for e in refused.errors] == [
        ("meta.deferred", "reserved"),
        ("meta.effect", "reserved"),
    ]
    assert len(engine.history(sid)) == 1
    (taken,) = engine.send_many(
        [EventInput(sid, "payment_detected", PAYMENT, meta={"source": "watcher-2"})]
    )
    assert isinstance(taken, SendResult)
    assert taken.event.meta == {"source": "watcher-2"}


def test_a_nul_character_in_an_event_id_or_a_create_request_is_refused(
    engine: Engine,
) -> None:
    sid = engine.create_session(create_request()).session_id
    with pytest.raises(ValidationError) as refused:
        engine.send(sid, "payment_detected", PAYMENT, event_id="tx\x00", external_ref="r\x00")
    assert [e.param for e in refused.value.errors] == ["event_id", "external_ref"]
    request = create_request()
    request["metadata"] = {"orderId": "A\x00"}
    with pytest.raises(ValidationError) as bad_create:
        engine.create_session(request)
    assert [(e.param, e.code) for e in bad_create.value.errors] == [
        ("metadata.orderId", "invalid_string")
    ]
    assert len(engine.history(sid)) == 1


def test_a_nul_character_in_a_session_id_refuses_only_that_event(engine: Engine) -> None:
    sid = engine.create_session(create_request()).session_id
    results = engine.send_many(
        [
            EventInput("s\x00", "payment_detected", PAYMENT),
            EventInput(sid, "payment_detected", PAYMENT),
        ]
    )
    assert isinstance(results[0], ValidationError)
    assert [e.param for e in results[0].errors] == ["session_id"]
    assert engine.get(sid).status == "paid"  # the rest of the group commit went through


def test_a_create_that_rolled_back_does_not_stop_the_flow_version_being_saved(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def lost_connection(*args: object) -> None:
        raise StoreError("connection lost mid-transaction")

    monkeypatch.setattr("flowengine.engine.write_requests", lost_connection)  # inside the tx
    with pytest.raises(StoreError):
        engine.create_session(create_request())
    monkeypatch.undo()
    flow_hash = engine.record(engine.create_session(create_request()).session_id).flow_hash
    with engine.store.transaction() as tx:
        assert tx.get_flow_version(flow_hash) is not None
