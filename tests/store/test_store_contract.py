"""The store contract, run unchanged against every backend (memory, SQLite, PostgreSQL).

What the engine and the workers rely on: records come back as they went in (big
integers included), a transaction is all or nothing, duplicates are refused, and the
outboxes hand out work in due order, once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from types import MappingProxyType

import pytest

from flowengine.errors import StoreConflict
from flowengine.store import (
    EffectAttempt,
    EffectRecord,
    EventRecord,
    FlowVersionRecord,
    SessionRecord,
    Store,
    Transaction,
)

BIG = 2**256
"""Amounts are integers in base units: 10**30 and beyond must survive every backend."""


def session(session_id: str = "s1", **changes: object) -> SessionRecord:
    record = SessionRecord(
        session_id=session_id,
        flow_name="deposit",
        flow_version="1",
        flow_hash="h1",
        state="created",
        status="requires_payment_method",
        data={"amountUnits": 10**30, "destination": {"chainId": 8453, "token": "0xab"}},
        created_at=1_000,
        updated_at=1_000,
        expires_at=61_000,
    )
    return replace(record, **changes)  # type: ignore[arg-type]


def event(seq: int, event_id: str | None = None, **changes: object) -> EventRecord:
    record = EventRecord(
        session_id="s1",
        seq=seq,
        event_id=event_id or f"e{seq}",
        event="payment_detected",
        source="created",
        target="paid",
        payload={"amountUnits": BIG - 1, "txHash": "0x" + "12" * 32},
        requests=({"effect": "deliver", "args": {"amountUnits": 10**30}},),
        created_at=2_000 + seq,
        meta={"worker": "w1"},
    )
    return replace(record, **changes)  # type: ignore[arg-type]


def effect(key: str, available_at: int = 0, **changes: object) -> EffectRecord:
    record = EffectRecord(
        key=key,
        session_id="s1",
        effect="deliver",
        state="paid",
        seq=1,
        status="pending",
        attempts=0,
        available_at=available_at,
        created_at=available_at,
    )
    return replace(record, **changes)  # type: ignore[arg-type]


class Boom(Exception):
    """Raised by a test inside a transaction, to see it rolled back."""


def run(store: Store, body: Callable[[Transaction], object], then_raise: bool = False) -> None:
    """Run ``body`` in one transaction, then raise :class:`Boom` if asked to."""
    with store.transaction() as tx:
        body(tx)
        if then_raise:
            raise Boom


@pytest.fixture
def with_session(store: Store) -> Store:
    """The store with session ``s1`` (outbox and log rows belong to a session)."""
    with store.transaction() as tx:
        tx.insert_session(session())
    return store


# --------------------------------------------------------------------------- sessions


def test_a_session_reads_back_as_written(store: Store) -> None:
    with store.transaction() as tx:
        tx.insert_session(session())
        assert tx.get_session("s1") == session()
    with store.transaction() as tx:
        assert tx.get_session("s1") == session()
        assert tx.get_session("s1", for_update=True) == session()
        assert tx.get_session("nope") is None
        assert tx.get_session("nope", for_update=True) is None


def test_an_update_replaces_the_session(with_session: Store) -> None:
    moved = session(state="paid", status="processing", seq=3, entered_seq=3, updated_at=5_000)
    moved = replace(moved, data={**moved.data, "receivedUnits": BIG})
    with with_session.transaction() as tx:
        tx.update_session(moved)
    with with_session.transaction() as tx:
        assert tx.get_session("s1") == moved


def test_an_update_keeps_the_flow_name_and_creation_time(with_session: Store) -> None:
    with with_session.transaction() as tx:
        tx.update_session(replace(session(), flow_name="other", created_at=99, state="paid"))
    with with_session.transaction() as tx:
        stored = tx.get_session("s1")
    assert stored == replace(session(), state="paid")


def test_updating_a_session_that_does_not_exist_is_a_conflict(store: Store) -> None:
    with pytest.raises(StoreConflict), store.transaction() as tx:
        tx.update_session(session("ghost"))
    with store.transaction() as tx:
        assert tx.get_session("ghost") is None


def test_rows_for_a_session_that_does_not_exist_are_a_conflict(store: Store) -> None:
    with pytest.raises(StoreConflict), store.transaction() as tx:
        tx.append_event(event(1, session_id="ghost"))
    with pytest.raises(StoreConflict), store.transaction() as tx:
        tx.add_timer("ghost", "expire", "created", 0, 10)


def test_an_external_ref_is_logged_once(with_session: Store) -> None:
    with with_session.transaction() as tx:
        tx.append_event(event(1, external_ref="8453:0xabc:0"))
    with pytest.raises(StoreConflict), with_session.transaction() as tx:
        tx.append_event(event(2, external_ref="8453:0xabc:0"))


def test_a_session_id_is_inserted_once(with_session: Store) -> None:
    with pytest.raises(KeyError), with_session.transaction() as tx:
        tx.insert_session(session(state="other"))
    with with_session.transaction() as tx:
        assert tx.get_session("s1") == session()


def test_read_only_mappings_are_stored_as_json_objects(store: Store) -> None:
    frozen = session(data=MappingProxyType({"amountUnits": BIG, "nested": {"a": [1, 2]}}))
    with store.transaction() as tx:
        tx.insert_session(frozen)
    with store.transaction() as tx:
        stored = tx.get_session("s1")
    assert stored is not None
    assert dict(stored.data) == {"amountUnits": BIG, "nested": {"a": [1, 2]}}


def test_several_sessions_commit_together(store: Store) -> None:
    with store.transaction() as tx:
        for n in range(3):
            tx.insert_session(session(f"s{n}"))
    with store.transaction() as tx:
        assert [tx.get_session(f"s{n}") for n in range(3)] == [session(f"s{n}") for n in range(3)]


# --------------------------------------------------------------------------- the log


def test_a_batch_of_sessions_is_locked_and_its_logged_events_found_at_once(
    store: Store,
) -> None:
    with store.transaction() as tx:
        for sid in ("s3", "s1", "s2"):
            tx.insert_session(session(sid))
        tx.append_event(event(1, "pay-1"))
        tx.append_event(event(1, "pay-3", session_id="s3"))
    keys = [("s3", "pay-3"), ("s1", "pay-1"), ("ghost", "pay-1"), ("s1", None), ("s1", "x")]
    with store.transaction() as tx:
        locked, logged = tx.lock_for_events(keys)
    assert list(locked) == ["s1", "s3"]  # in id order, the missing one left out
    assert locked["s3"] == session("s3")
    assert sorted(logged) == [("s1", "pay-1"), ("s3", "pay-3")]
    assert logged[("s3", "pay-3")] == event(1, "pay-3", session_id="s3")


def test_a_batch_finds_only_the_pairs_it_asked_for(store: Store) -> None:
    with store.transaction() as tx:
        for sid in ("s1", "s2"):
            tx.insert_session(session(sid))
        tx.append_event(event(1, "a", session_id="s1"))
        tx.append_event(event(1, "b", session_id="s2"))
    with store.transaction() as tx:  # s1 logged "a", not "b"; s2 the other way round
        _, logged = tx.lock_for_events([("s1", "b"), ("s2", "a"), ("s2", "b")])
    assert list(logged) == [("s2", "b")]


def test_a_reading_finds_what_a_batch_needs_and_keeps_nothing_written_in_it(
    store: Store,
) -> None:
    with store.transaction() as tx:
        tx.insert_session(session())
        tx.append_event(event(1, "pay-1"))
    with store.reading() as view:
        assert view.read_for_events([("s1", "pay-1"), ("s1", "x"), ("ghost", None)]) == (
            {"s1": session()},
            {("s1", "pay-1"): event(1, "pay-1")},
        )
        view.update_session(session(state="paid"))  # rolled back when the reading ends
    with store.transaction() as tx:
        assert tx.get_session("s1") == session()


def test_a_reading_holds_no_lock_a_writer_waits_for(store_kind: str, store: Store) -> None:
    """The engine plans sends in a reading while other senders commit (planning.py)."""
    if store_kind == "memory":
        pytest.skip("the memory store serializes readers and writers with one lock")
    with store.transaction() as tx:
        tx.insert_session(session())
    with store.reading() as view:
        assert view.read_for_events([("s1", None)])[0]["s1"] == session()
        writer = threading.Thread(target=_lock_and_update, args=(store,))
        writer.start()
        writer.join(timeout=10)
        assert not writer.is_alive(), "a writer waited for a reading"
        assert view.get_session("s1") is not None
    with store.transaction() as tx:
        assert tx.get_session("s1") == session(state="paid", seq=2)


def _lock_and_update(store: Store) -> None:
    with store.transaction() as tx:
        tx.lock_for_events([("s1", None)])
        tx.update_session(session(state="paid", seq=2))


def test_queued_writes_are_seen_by_the_next_read_in_the_transaction(store: Store) -> None:
    with store.transaction() as tx:
        tx.insert_session(session())
        tx.append_event(event(1))
        tx.update_session(session(state="paid"))
        assert tx.get_session("s1") == session(state="paid")
        assert tx.lock_for_events([("s1", "e1")]) == (
            {"s1": session(state="paid")},
            {("s1", "e1"): event(1)},
        )


def test_events_are_found_by_id_and_by_ref_and_listed_in_order(with_session: Store) -> None:
    first, second = event(1, external_ref="0xtx1"), event(2)
    third = event(3, external_ref="0xtx3", payload={"amountUnits": 10**30, "list": [BIG, "x"]})
    with with_session.transaction() as tx:
        tx.append_event(first)
        tx.append_event(second)
    with with_session.transaction() as tx:
        tx.append_event(third)
    with with_session.transaction() as tx:
        assert tx.events("s1") == [first, second, third]
        assert tx.find_event("s1", "e2") == second
        assert tx.find_event_by_ref("s1", "0xtx1") == first
        assert tx.find_event_by_ref("s1", "0xtx3") == third
        assert tx.find_event("s1", "missing") is None
        assert tx.find_event_by_ref("s1", "0xmissing") is None
        assert tx.find_event("other", "e1") is None
        assert tx.events("other") == []


def test_big_integers_round_trip_exactly(with_session: Store) -> None:
    amounts = [10**30, BIG, -BIG, 2**63, 2**64 + 1]
    with with_session.transaction() as tx:
        tx.append_event(event(1, payload={"amounts": amounts}, requests=({"n": BIG},)))
        tx.add_webhook("s1", "session.processing", {"amountUnits": BIG}, 5)
    with with_session.transaction() as tx:
        (logged,) = tx.events("s1")
        (webhook,) = tx.webhooks("s1")
    assert logged.payload["amounts"] == amounts
    assert all(type(n) is int for n in logged.payload["amounts"])
    assert logged.requests == ({"n": BIG},)
    assert webhook.body == {"amountUnits": BIG}


def test_a_duplicate_event_id_rolls_the_whole_transaction_back(with_session: Store) -> None:
    with with_session.transaction() as tx:
        tx.append_event(event(1))

    def step_with_a_reused_event_id(tx: Transaction) -> None:
        tx.update_session(session(state="paid", seq=2))
        tx.add_effect(effect("s1:deliver:2"))
        tx.append_event(event(2, event_id="e1"))

    with pytest.raises(KeyError):
        run(with_session, step_with_a_reused_event_id)
    with with_session.transaction() as tx:
        assert tx.get_session("s1") == session()
        assert tx.events("s1") == [event(1)]
        assert tx.effects("s1") == []


# --------------------------------------------------------------------------- atomicity


def test_an_exception_leaves_nothing_written(store: Store) -> None:
    def write_everything(tx: Transaction) -> None:
        tx.insert_session(session())
        tx.append_event(event(1))
        tx.add_effect(effect("s1:deliver:1"))
        tx.record_attempt(EffectAttempt("s1:deliver:1", 1, 1, 2, "ok"))
        tx.add_timer("s1", "expire", "created", 0, 10)
        tx.add_webhook("s1", "session.processing", {"id": "s1"}, 1)
        tx.save_flow_version(FlowVersionRecord("deposit", "1", "h1", "text", 1))

    with pytest.raises(Boom):
        run(store, write_everything, then_raise=True)
    with store.transaction() as tx:
        assert tx.get_session("s1") is None
        assert tx.events("s1") == []
        assert tx.find_event("s1", "e1") is None
        assert tx.effects("s1") == []
        assert tx.get_effect("s1:deliver:1") is None
        assert tx.attempts("s1:deliver:1") == []
        assert tx.timers("s1") == []
        assert tx.claim_due_timers(now=100, limit=10) == []
        assert tx.webhooks("s1") == []
        assert tx.get_flow_version("h1") is None


def test_an_exception_undoes_updates_to_existing_rows(with_session: Store) -> None:
    with with_session.transaction() as tx:
        tx.add_effect(effect("k"))
        tx.add_timer("s1", "expire", "created", 0, 10)

    def change_everything(tx: Transaction) -> None:
        tx.update_session(session(state="expired"))
        tx.update_effect(replace(effect("k"), status="done"))
        (timer,) = tx.claim_due_timers(now=10, limit=1)
        tx.finish_timer(timer.timer_id, "fired")

    with pytest.raises(Boom):
        run(with_session, change_everything, then_raise=True)
    with with_session.transaction() as tx:
        assert tx.get_session("s1") == session()
        assert tx.get_effect("k") == effect("k")
        assert [t.status for t in tx.timers("s1")] == ["pending"]


# --------------------------------------------------------------------------- effects


def test_effects_are_listed_as_added_and_read_by_key(with_session: Store) -> None:
    added = [effect("s1:deliver:1", 30), effect("s1:approve:1", 10), effect("s1:call:1", 20)]
    with with_session.transaction() as tx:
        for record in added:
            tx.add_effect(record)
    with with_session.transaction() as tx:
        assert tx.effects("s1") == added
        assert tx.get_effect("s1:approve:1") == added[1]
        assert tx.get_effect("missing") is None


def test_an_effect_key_is_added_once(with_session: Store) -> None:
    with with_session.transaction() as tx:
        tx.add_effect(effect("k"))
    with pytest.raises(KeyError), with_session.transaction() as tx:
        tx.add_effect(effect("k", effect="refund"))
    with with_session.transaction() as tx:
        assert tx.effects("s1") == [effect("k")]


def test_claim_takes_due_effects_earliest_first_up_to_the_limit(with_session: Store) -> None:
    with with_session.transaction() as tx:
        for key, at in [("c", 30), ("a", 10), ("later", 1_000), ("b", 20)]:
            tx.add_effect(effect(key, at))
    with with_session.transaction() as tx:
        claimed = tx.claim_effects(now=100, limit=2, worker="w1", lease_ms=50)
    assert claimed == [
        effect("a", 10, status="running", attempts=1, lease_until=150, claimed_by="w1"),
        effect("b", 20, status="running", attempts=1, lease_until=150, claimed_by="w1"),
    ]
    with with_session.transaction() as tx:
        assert tx.get_effect("a") == claimed[0]
        assert [r.key for r in tx.claim_effects(100, 10, "w2", 50)] == ["c"]
        assert tx.claim_effects(100, 10, "w2", 50) == []


def test_an_expired_lease_is_claimed_again(with_session: Store) -> None:
    with with_session.transaction() as tx:
        tx.add_effect(effect("k", 0))
        (first,) = tx.claim_effects(now=100, limit=5, worker="w1", lease_ms=50)
    assert (first.attempts, first.lease_until, first.claimed_by) == (1, 150, "w1")
    with with_session.transaction() as tx:
        assert tx.claim_effects(now=149, limit=5, worker="w2", lease_ms=50) == []
    with with_session.transaction() as tx:
        (again,) = tx.claim_effects(now=150, limit=5, worker="w2", lease_ms=50)
    assert again == replace(first, attempts=2, lease_until=200, claimed_by="w2")


def test_expired_leases_and_due_rows_are_claimed_oldest_first_alike(
    with_session: Store,
) -> None:
    # Every store takes claimable rows by available_at (then insertion), whether due
    # or back from a lease that ran out: the oldest work first, in the same order.
    with with_session.transaction() as tx:
        tx.add_effect(effect("old", 10))
        tx.claim_effects(now=10, limit=1, worker="w1", lease_ms=50)  # lease until 60
        tx.add_effect(effect("new", 20))
        tx.add_effect(effect("newer", 20))
    with with_session.transaction() as tx:
        taken = [r.key for r in tx.claim_effects(now=100, limit=2, worker="w2", lease_ms=50)]
    assert taken == ["old", "new"]
    with with_session.transaction() as tx:
        assert [r.key for r in tx.claim_effects(100, 5, "w3", 50)] == ["newer"]


def test_a_finished_effect_is_not_claimed(with_session: Store) -> None:
    with with_session.transaction() as tx:
        tx.add_effect(effect("done", 0))
        tx.add_effect(effect("failed", 0))
        tx.add_effect(effect("retry", 0))
    with with_session.transaction() as tx:
        claimed = {r.key: r for r in tx.claim_effects(now=1, limit=5, worker="w", lease_ms=10)}
        tx.update_effect(replace(claimed["done"], status="done", lease_until=None))
        tx.update_effect(replace(claimed["failed"], status="failed", last_error="reverted"))
        tx.update_effect(replace(claimed["retry"], status="pending", available_at=500))
    with with_session.transaction() as tx:
        assert tx.claim_effects(now=1_000, limit=5, worker="w", lease_ms=10) == [
            replace(claimed["retry"], available_at=500, attempts=2, lease_until=1_010)
        ]
        assert tx.get_effect("failed") == replace(
            claimed["failed"], status="failed", last_error="reverted"
        )


def test_a_rolled_back_claim_leaves_the_effect_claimable(with_session: Store) -> None:
    with with_session.transaction() as tx:
        tx.add_effect(effect("k", 0))
    claimed_first: list[EffectRecord] = []
    with pytest.raises(Boom):
        run(with_session, lambda tx: claimed_first.extend(tx.claim_effects(1, 5, "w1", 10)), True)
    assert len(claimed_first) == 1
    with with_session.transaction() as tx:
        (claimed,) = tx.claim_effects(now=1, limit=5, worker="w2", lease_ms=10)
    assert (claimed.attempts, claimed.claimed_by) == (1, "w2")


def test_updating_an_unknown_effect_is_a_key_error(with_session: Store) -> None:
    with pytest.raises(KeyError), with_session.transaction() as tx:
        tx.update_effect(effect("missing"))


def test_attempts_are_listed_in_the_order_recorded(with_session: Store) -> None:
    tries = [
        EffectAttempt("k", 1, 10, 20, "unknown", "rpc timeout"),
        EffectAttempt("k", 2, 30, 40, "ok"),
    ]
    with with_session.transaction() as tx:
        tx.add_effect(effect("k"))
        tx.add_effect(effect("other"))
        for attempt in tries:
            tx.record_attempt(attempt)
        tx.record_attempt(EffectAttempt("other", 1, 1, 2, "failed"))
    with with_session.transaction() as tx:
        assert tx.attempts("k") == tries
        assert tx.attempts("none") == []


# --------------------------------------------------------------------------- timers


def test_timers_are_claimed_earliest_first_within_the_limit(with_session: Store) -> None:
    with with_session.transaction() as tx:
        for name, due in [("t30", 30), ("t10", 10), ("t20", 20), ("t100", 100)]:
            tx.add_timer("s1", name, "created", 0, due)
    with with_session.transaction() as tx:
        first = tx.claim_due_timers(now=50, limit=2)
        assert [(t.event, t.due_at, t.status) for t in first] == [
            ("t10", 10, "pending"),
            ("t20", 20, "pending"),
        ]
        for timer in first:
            tx.finish_timer(timer.timer_id, "fired")
    with with_session.transaction() as tx:
        rest = tx.claim_due_timers(now=50, limit=10)
        assert [t.event for t in rest] == ["t30"]
        tx.finish_timer(rest[0].timer_id, "cancelled")
    with with_session.transaction() as tx:
        assert tx.claim_due_timers(now=50, limit=10) == []
        assert [t.event for t in tx.claim_due_timers(now=100, limit=10)] == ["t100"]
        listed = {t.event: t.status for t in tx.timers("s1")}
    assert listed == {"t30": "cancelled", "t10": "fired", "t20": "fired", "t100": "pending"}


def test_parked_effects_and_failed_timers_are_listed_for_a_person(
    with_session: Store,
) -> None:
    with with_session.transaction() as tx:
        for key, at in [("late", 30), ("early", 10), ("fine", 5)]:
            tx.add_effect(effect(key, at, params={"units": BIG}))
        for name, due in [("t2", 20), ("t1", 10), ("ok", 5)]:
            tx.add_timer("s1", name, "created", 0, due)
    with with_session.transaction() as tx:
        for key, at in [("late", 30), ("early", 10)]:
            tx.update_effect(effect(key, at, params={"units": BIG}, status="review"))
        for timer in tx.claim_due_timers(now=50, limit=10):
            tx.finish_timer(timer.timer_id, "fired" if timer.event == "ok" else "failed")
    with with_session.transaction() as tx:
        assert [(e.key, e.params) for e in tx.parked_effects(limit=10)] == [
            ("early", {"units": BIG}),
            ("late", {"units": BIG}),
        ]
        assert [e.key for e in tx.parked_effects(limit=1)] == ["early"]
        assert [(t.event, t.status) for t in tx.failed_timers(limit=10)] == [
            ("t1", "failed"),
            ("t2", "failed"),
        ]


def test_a_failed_timer_set_pending_again_is_claimable(with_session: Store) -> None:
    with with_session.transaction() as tx:
        tx.add_timer("s1", "expire", "created", 0, 10)
    with with_session.transaction() as tx:
        (timer,) = tx.claim_due_timers(now=50, limit=10)
        tx.finish_timer(timer.timer_id, "failed")
    with with_session.transaction() as tx:
        assert tx.claim_due_timers(now=50, limit=10) == []
        tx.finish_timer(timer.timer_id, "pending")
    with with_session.transaction() as tx:
        assert [t.timer_id for t in tx.claim_due_timers(now=50, limit=10)] == [timer.timer_id]


def test_a_timer_retried_after_its_firing_rolled_back_is_claimed_once(
    with_session: Store,
) -> None:
    # Firing raised (its claim rolled back), the worker parked the timer as failed,
    # and a person retried it: one claim, not two copies of the same timer.
    with with_session.transaction() as tx:
        tx.add_timer("s1", "expire", "created", 0, 10)

    def fire(tx: Transaction) -> None:
        tx.claim_due_timers(now=10, limit=5)

    with pytest.raises(Boom):
        run(with_session, fire, then_raise=True)
    with with_session.transaction() as tx:
        (timer,) = tx.timers("s1")
        tx.finish_timer(timer.timer_id, "failed")
    with with_session.transaction() as tx:
        tx.finish_timer(timer.timer_id, "pending")
    with with_session.transaction() as tx:
        assert [t.timer_id for t in tx.claim_due_timers(now=50, limit=10)] == [timer.timer_id]


def test_a_timer_keeps_what_it_was_set_with(with_session: Store) -> None:
    with with_session.transaction() as tx:
        tx.add_timer("s1", "expire", "amount_selected", 4, 61_000)
    with with_session.transaction() as tx:
        (timer,) = tx.timers("s1")
        assert tx.claim_due_timers(now=61_000, limit=1) == [timer]
    assert (timer.session_id, timer.event, timer.state, timer.entered_seq) == (
        "s1",
        "expire",
        "amount_selected",
        4,
    )
    assert (timer.due_at, timer.status) == (61_000, "pending")


def test_a_claimed_timer_rolled_back_is_claimable_again(with_session: Store) -> None:
    with with_session.transaction() as tx:
        tx.add_timer("s1", "expire", "created", 0, 10)

    def fire(tx: Transaction) -> None:
        (timer,) = tx.claim_due_timers(now=10, limit=5)
        tx.finish_timer(timer.timer_id, "fired")

    with pytest.raises(Boom):
        run(with_session, fire, then_raise=True)
    with with_session.transaction() as tx:
        (timer,) = tx.claim_due_timers(now=10, limit=5)
    assert (timer.event, timer.status) == ("expire", "pending")


def test_a_claimed_timer_left_unfinished_is_claimable_again(with_session: Store) -> None:
    with with_session.transaction() as tx:
        tx.add_timer("s1", "expire", "created", 0, 10)
    with with_session.transaction() as tx:
        assert len(tx.claim_due_timers(now=10, limit=5)) == 1  # committed without finishing
    with with_session.transaction() as tx:
        assert len(tx.claim_due_timers(now=10, limit=5)) == 1


def test_finishing_an_unknown_timer_is_a_key_error(with_session: Store) -> None:
    with pytest.raises(KeyError), with_session.transaction() as tx:
        tx.finish_timer(987_654, "fired")


# --------------------------------------------------------------------------- webhooks


def test_webhooks_are_queued_pending_in_order(with_session: Store) -> None:
    with with_session.transaction() as tx:
        tx.add_webhook("s1", "session.processing", {"id": "s1", "status": "processing"}, 100)
        tx.add_webhook("s1", "session.succeeded", {"id": "s1", "amountUnits": BIG}, 200)
    with with_session.transaction() as tx:
        first, second = tx.webhooks("s1")
        assert tx.webhooks("other") == []
    assert (first.type, first.body, first.status, first.attempts) == (
        "session.processing",
        {"id": "s1", "status": "processing"},
        "pending",
        0,
    )
    assert (first.available_at, first.created_at) == (100, 100)
    assert (second.type, second.body, second.available_at) == (
        "session.succeeded",
        {"id": "s1", "amountUnits": BIG},
        200,
    )
    assert first.webhook_id != second.webhook_id


# --------------------------------------------------------------------------- flow versions


def test_a_flow_version_is_saved_once_by_content_hash(store: Store) -> None:
    v1 = FlowVersionRecord("deposit", "1", "h1", "name: deposit\n", 10)
    with store.transaction() as tx:
        tx.save_flow_version(v1)
        tx.save_flow_version(replace(v1, text="other", created_at=20))
    with store.transaction() as tx:
        tx.save_flow_version(replace(v1, version="1b", created_at=30))
        assert tx.get_flow_version("h1") == v1
        assert tx.get_flow_version("h2") is None


def test_a_second_text_under_a_stored_name_and_version_is_a_conflict(store: Store) -> None:
    # The engine checks before saving, but two deploys can race through that check:
    # the store itself keeps one text per name and version.
    with store.transaction() as tx:
        tx.save_flow_version(FlowVersionRecord("deposit", "2", "h2", "v2", 20))
    with pytest.raises(StoreConflict), store.transaction() as tx:
        tx.save_flow_version(FlowVersionRecord("deposit", "2", "h2-edited", "v2 edited", 30))
    with store.transaction() as tx:
        assert [v.content_hash for v in tx.flow_versions("deposit")] == ["h2"]


def test_versions_of_a_flow_are_listed_oldest_first_and_can_be_marked_deployed(
    store: Store,
) -> None:
    with store.transaction() as tx:
        tx.save_flow_version(FlowVersionRecord("deposit", "2", "h2", "v2", 20))
        tx.save_flow_version(FlowVersionRecord("deposit", "1", "h1", "v1", 10))
        tx.save_flow_version(FlowVersionRecord("other", "1", "o1", "o", 5))
        tx.mark_deployed("h2", 99, "forced: hotfix")
    with store.transaction() as tx:
        found = tx.flow_versions("deposit")
    assert [(v.version, v.deployed_at, v.deploy_note) for v in found] == [
        ("1", None, ""),
        ("2", 99, "forced: hotfix"),
    ]


def test_sessions_and_logs_of_one_flow_are_read_together(store: Store) -> None:
    with store.transaction() as tx:
        tx.insert_session(session("b", created_at=2_000))
        tx.insert_session(session("a", created_at=1_000))
        tx.insert_session(session("z", flow_name="other"))
        for sid in ("a", "b", "z"):
            tx.append_event(event(1, session_id=sid))
            tx.append_event(event(2, session_id=sid))
    with store.transaction() as tx:
        assert [s.session_id for s in tx.sessions_of_flow("deposit")] == ["a", "b"]
        assert [(e.session_id, e.seq) for e in tx.events_of_flow("deposit")] == [
            ("a", 1),
            ("a", 2),
            ("b", 1),
            ("b", 2),
        ]


def test_the_flows_a_store_holds_are_listed_by_name(store: Store) -> None:
    with store.transaction() as tx:
        assert tx.flow_names() == []
        tx.save_flow_version(FlowVersionRecord("strict", "1", "s1", "s", 10))
        tx.save_flow_version(FlowVersionRecord("deposit", "1", "d1", "d", 20))
        tx.save_flow_version(FlowVersionRecord("deposit", "2", "d2", "d2", 30))
    with store.transaction() as tx:
        assert tx.flow_names() == ["deposit", "strict"]


def test_ties_are_listed_in_the_same_order_on_every_store(with_session: Store) -> None:
    with with_session.transaction() as tx:
        for key in ("p-first", "p-second"):
            tx.add_effect(effect(key, 10, status="review", created_at=50 - len(key)))
        tx.save_flow_version(FlowVersionRecord("deposit", "2", "h-b", "v2", 20))
        tx.save_flow_version(FlowVersionRecord("deposit", "1", "h-a", "v1", 20))
    with with_session.transaction() as tx:
        assert [e.key for e in tx.parked_effects(10)] == ["p-first", "p-second"]
        assert [v.content_hash for v in tx.flow_versions("deposit")] == ["h-a", "h-b"]
