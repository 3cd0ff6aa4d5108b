"""The public session resource (Daimo's shape plus ours) built from a stored record."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from .. import amounts
from ..store import EventRecord, SessionRecord
from .amounts import format_units
from .models import Session


def session_view(record: SessionRecord, history: Sequence[EventRecord] | None = None) -> Session:
    """The public resource (Daimo's shape plus ours) for a stored session."""
    return Session.model_validate(session_body(record, history))


def session_body(
    record: SessionRecord, history: Sequence[EventRecord] | None = None
) -> dict[str, Any]:
    """The resource as JSON, built straight from the stored data, which was validated
    when the session was created: ``session_view(record).full()`` without validating
    it again (webhook snapshots are taken for every notifying transition, and pydantic
    was 10 % of a step). tests/sessions/test_session_view.py holds the two equal."""
    data = record.data
    decimals = int(data["destination"].get("decimals", 0))
    moved = data.get("amounts", amounts.empty())
    destination = {k: v for k, v in data["destination"].items() if v is not None}
    delivery = _delivery(moved, decimals, record.status)
    if delivery:
        destination["delivery"] = delivery
    payment_method = data.get("paymentMethod")
    metadata = data.get("metadata")
    return {
        "sessionId": record.session_id,
        "status": record.status,
        "destination": destination,
        "display": {k: v for k, v in data["display"].items() if v is not None},
        "paymentMethod": None if payment_method is None else copy.deepcopy(payment_method),
        "metadata": None if metadata is None else dict(metadata),
        "clientSecret": data.get("clientSecret", ""),
        "refundAddress": data.get("refundAddress"),
        "createdAt": record.created_at // 1000,
        "expiresAt": record.expires_at // 1000,
        "flow": {"name": record.flow_name, "version": str(record.flow_version)},
        "state": record.state,
        "amounts": {
            kind: ("-" if units < 0 else "") + format_units(abs(units), decimals)
            for kind, units in amounts.totals(moved).items()
        },
        "txHashes": list(moved.get("txHashes", [])),
        "history": [
            {"event": e.event, "from": e.source, "to": e.target, "at": e.created_at // 1000}
            for e in history or ()
        ],
    }


def _delivery(moved: Mapping[str, Any], decimals: int, status: str) -> dict[str, Any] | None:
    """Daimo's ``destination.delivery``: the delivery, or for a bounce the refund."""
    kind = "refunded" if status == "bounced" else "delivered"
    units = int(moved.get(kind, 0))
    hashes = moved.get("txHashes", [])
    if not units or not hashes:
        return None
    return {"txHash": hashes[-1], "receivedUnits": format_units(units, decimals)}
