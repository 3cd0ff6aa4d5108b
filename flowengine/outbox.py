"""What a transition asks for, written as rows in the same transaction (the outbox).

The compiled machine only *records* requests (see :mod:`flowengine.compiler`); this
module turns them into store rows that the workers pick up: effects for the effect
runner, timers for the timer worker, webhooks for the merchant. Nothing here performs
anything, so a rolled-back transaction leaves no trace.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import amounts
from .compiler import EffectRequest, Request, TimerRequest, WebhookRequest
from .sessions.view import session_body
from .store import EffectRecord, SessionRecord, Transaction


def write_requests(
    tx: Transaction, record: SessionRecord, requests: Sequence[Request], now: int
) -> None:
    """Write what a transition asked for, in its transaction: effects (outbox rows keyed
    session:effect:seq, with the amount a state's ``amount:`` fixes), timers (due at
    a delay or at the session's expiry) and webhooks (with the session as it is now)."""
    for index, request in enumerate(requests):
        if isinstance(request, EffectRequest):
            key = f"{record.session_id}:{request.effect}:{record.seq}"
            if index and any(
                isinstance(r, EffectRequest) and r.effect == request.effect
                for r in requests[:index]
            ):
                key += f".{index}"
            tx.add_effect(
                EffectRecord(
                    key=key,
                    session_id=record.session_id,
                    effect=request.effect,
                    state=record.state,  # where the session waits for the outcome
                    seq=record.seq,
                    status="pending",
                    attempts=0,
                    available_at=now,
                    created_at=now,
                    params=effect_params(request, record),
                )
            )
        elif isinstance(request, TimerRequest):
            due = (
                now + request.after_seconds * 1000
                if request.after_seconds is not None
                else record.expires_at
            )
            tx.add_timer(record.session_id, request.event, request.state, record.seq, due)
        elif isinstance(request, WebhookRequest):
            body = {
                "id": f"{record.session_id}:{record.seq}:{request.type}",
                "type": request.type,
                "createdAt": now // 1000,
                "data": {"session": session_body(record)},
            }
            tx.add_webhook(record.session_id, request.type, body, now)


def effect_params(request: EffectRequest, record: SessionRecord) -> dict[str, Any] | None:
    """The amount a state's ``amount:`` names, fixed now, after this event's own money
    is counted, so a retry or a takeover after a crash moves the same units."""
    if request.amount is None:
        return None
    return {"units": amounts.effect_units(request.amount, record.data)}


def request_rows(requests: Sequence[Request]) -> tuple[dict[str, Any], ...]:
    """The requests as logged JSON (flat frozen dataclasses: no deep copy needed), as a
    tuple like the rows stores read back, so a record compares equal either way."""
    return tuple({k: v for k, v in vars(r).items() if v is not None} for r in requests)
