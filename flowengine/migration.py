"""Moving a live session to a newer version of its flow, when that version says so.

Sessions are pinned to the flow version they started with (DESIGN: a session never
silently switches). A newer version may take older sessions over with
``upgrade: {from: <versions>, migrate: {old_state: new_state}}``: before applying an
event the engine asks :func:`migration_target`, offers the event to the new version in
the target state, and only if it is taken writes the move (:func:`migrate`) and the
event, in one transaction.
"""

from __future__ import annotations

from dataclasses import replace

from .compiler import CompiledFlow, TimerRequest
from .flows import save_version_in
from .outbox import write_requests
from .store import EventRecord, SessionRecord, Transaction

MIGRATED_EVENT = "flow.migrated"


def migration_target(
    tx: Transaction, record: SessionRecord, flow: CompiledFlow, current: CompiledFlow | None
) -> str | None:
    """The state of ``current`` (the flow's current version) this session moves to now,
    or None when it stays on its own version: ``current``'s ``upgrade.migrate`` must
    cover the session's version and map its state, and neither side may be final.

    ``from: "*"`` covers only versions *older* than ``current`` (:func:`_older`):
    during a rolling deploy or a rollback, processes running different versions share
    one store, and one still on the older version must not move sessions back to it
    (they would then bounce between the two, or stay on the old one).
    """
    if current is None or current.spec.content_hash == record.flow_hash:
        return None
    upgrade = current.spec.upgrade
    if isinstance(upgrade, str) or not upgrade.covers(record.flow_version):
        return None
    target = upgrade.migrate.get(record.state)
    if target is None or flow.is_final(record.state) or current.is_final(target):
        return None
    if record.flow_version not in upgrade.versions and not _older(tx, record, current):
        return None
    return target


def next_event_state(
    tx: Transaction, record: SessionRecord, flow: CompiledFlow, current: CompiledFlow | None
) -> tuple[CompiledFlow, str, bool]:
    """The flow version and state the session's next event is offered to, and whether
    that moves it: ``current`` in its :func:`migration_target` when ``current`` takes
    the session over, else its own version (``flow``) and state. The event is applied
    there or refused; the move is written (:func:`migrate`) only if it is taken."""
    target = migration_target(tx, record, flow, current)
    if target is None:
        return flow, record.state, False
    assert current is not None
    return current, target, True


def _older(tx: Transaction, record: SessionRecord, current: CompiledFlow) -> bool:
    """Whether the session's flow version is older than ``current``'s.

    By number when both versions are whole numbers (``version: 3``, as every shipped
    flow's is): release order, whichever process saw which first. Otherwise by which
    the store saw first; and a version the store has not seen is not newer than any.
    It used to count as newest, but a process still on an old release that has not
    written its version yet (one running only workers) then moved sessions back to it,
    and, having saved it at that move, made it the newest for good.
    """
    theirs, ours = record.flow_version, current.spec.version
    if _whole(theirs) and _whole(ours):
        return int(theirs) < int(ours)
    mine = tx.get_flow_version(current.spec.content_hash)
    other = tx.get_flow_version(record.flow_hash)
    return mine is not None and other is not None and other.created_at < mine.created_at


def _whole(version: str) -> bool:
    return version.isascii() and version.isdigit()


def migrate(
    tx: Transaction,
    record: SessionRecord,
    current: CompiledFlow,
    target: str,
    trigger: str,
    now: int,
) -> SessionRecord:
    """Move the session to ``target`` of ``current``, logged as a ``flow.migrated`` row.

    The engine calls this only once the new version has accepted the triggering event,
    in that event's transaction, so a refused event leaves the session on its old
    version and writes nothing. A migration does not re-enter the state: no effect is
    requested again (one in flight carries over), only the new state's timers are
    scheduled afresh.
    """
    seq = record.seq + 1
    migrated = replace(
        record,
        flow_version=current.spec.version,
        flow_hash=current.spec.content_hash,
        state=target,
        status=current.status_of(target),
        updated_at=now,
        seq=seq,
        entered_seq=seq,
    )
    save_version_in(tx, current.spec, now)
    tx.append_event(
        EventRecord(
            session_id=record.session_id,
            seq=seq,
            event_id=f"migrate:{record.flow_hash[:16]}:{current.spec.content_hash[:16]}:{seq}",
            event=MIGRATED_EVENT,
            source=record.state,
            target=target,
            created_at=now,
            meta={
                "from_version": record.flow_version,
                "to_version": current.spec.version,
                "from_hash": record.flow_hash,
                "to_hash": current.spec.content_hash,
                "trigger": trigger,
            },
        )
    )
    tx.update_session(migrated)
    for effect in tx.effects(record.session_id):
        in_flight = effect.status in ("pending", "running")
        if in_flight and (effect.state, effect.seq) == (record.state, record.entered_seq):
            tx.update_effect(replace(effect, state=target, seq=seq))
    timers = [r for r in current.entry_requests(target) if isinstance(r, TimerRequest)]
    write_requests(tx, migrated, timers, now)
    return migrated
