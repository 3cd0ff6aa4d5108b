"""Moving a live session to a newer version of its flow, when that version says so.

Sessions are pinned to the flow version they started with (DESIGN: a session never
silently switches). A newer version may take older sessions over with
``upgrade: {from: <versions>, migrate: {old_state: new_state}}``; the engine calls
:func:`migrate_if_declared` before applying each event, inside that event's
transaction.
"""

from __future__ import annotations

from dataclasses import replace

from .compiler import CompiledFlow, TimerRequest
from .flows import save_version_in
from .outbox import write_requests
from .store import EventRecord, SessionRecord, Transaction

MIGRATED_EVENT = "flow.migrated"


def migrate_if_declared(
    tx: Transaction,
    record: SessionRecord,
    flow: CompiledFlow,
    current: CompiledFlow | None,
    trigger: str,
    now: int,
) -> tuple[SessionRecord, CompiledFlow]:
    """Move a session to the current version of its flow when that version says so.

    The current version's ``upgrade.migrate`` must cover the session's version and
    map its state; otherwise the session stays pinned to its own version. The move
    is logged as a ``flow.migrated`` row in this same transaction, so it commits or
    rolls back with the event that triggered it (an event the new version refuses
    leaves the session on its old version). A migration does not re-enter the
    state: no effect is requested again (one in flight carries over), only the new
    state's timers are scheduled afresh. ``current`` is the flow's current version
    (None when this engine no longer has the flow), ``trigger`` the event that moves it.
    """
    if current is None or current.spec.content_hash == record.flow_hash:
        return record, flow
    upgrade = current.spec.upgrade
    if isinstance(upgrade, str) or not upgrade.covers(record.flow_version):
        return record, flow
    target = upgrade.migrate.get(record.state)
    if target is None or flow.is_final(record.state) or current.is_final(target):
        return record, flow
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
            event_id=f"migrate:{record.flow_hash[:16]}:{current.spec.content_hash[:16]}",
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
    return migrated, current
