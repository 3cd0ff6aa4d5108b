"""The session resource two ways: validated (``session_view``, for the API) and built
straight from the stored data (``session_body``, for webhook snapshots, unvalidated
for speed). The view validates the body, so they share their values (tested in
test_session_resource.py); what this holds is that validation has nothing to change:
no key missing, none extra, no None left in, no number where text belongs, for every
kind of session at every step of its life, so a webhook carries exactly the API's JSON."""

from __future__ import annotations

from typing import Any

import pytest

from flowengine.engine import Engine
from flowengine.flows import FlowRegistry
from flowengine.sessions.view import session_body, session_view
from tests.conftest import FLOWS
from tests.factories import create_request

PAY = {"units": 25_000_000, "txHash": "0x" + "aa" * 32}
DONE = {"units": 25_000_000, "txHash": "0x" + "bb" * 32}

KINDS: dict[str, tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]] = {
    "delivered": (
        create_request(),
        [("payment_detected", PAY), ("evm.deliver.done", DONE), ("evm.settle.done", {})],
    ),
    "bounced": (
        create_request(display={"title": "T", "verb": "Pay", "paymentOptions": ["AllWallets"]}),
        [("payment_detected", PAY), ("evm.deliver.failed", {}), ("evm.refund.done", DONE)],
    ),
    "payer chooses, no metadata": (
        {k: v for k, v in create_request(amount=None).items() if k != "metadata"},
        [("select_amount", {}), ("payment_detected", PAY)],
    ),
    "contract call": (
        create_request(
            flow="contract_call",
            destination={**create_request()["destination"], "calldata": "0xd09de08a"},
        ),
        [("payment_detected", PAY)],
    ),
    "more paid out than received": (
        create_request(),
        [("payment_detected", {"units": 1, "txHash": PAY["txHash"]}), ("evm.deliver.done", DONE)],
    ),
}


@pytest.mark.parametrize("kind", KINDS)
def test_the_webhook_body_is_the_validated_resource(kind: str) -> None:
    engine = Engine(FlowRegistry.from_directory(FLOWS), "memory://")
    request, steps = KINDS[kind]
    sid = engine.create_session(request).session_id
    for event, payload in [("", {}), *steps]:
        if event:
            engine.send(sid, event, payload)
        record = engine.record(sid)
        history = engine.history(sid)
        assert session_body(record) == session_view(record).full()
        assert session_body(record, history) == session_view(record, history).full()
