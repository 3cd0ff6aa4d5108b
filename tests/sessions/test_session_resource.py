"""The session resource: Daimo's shape plus flowengine's fields, in a public and a full view."""

from typing import Any

import pydantic
import pytest

from flowengine.sessions import (
    Catalog,
    Session,
    new_client_secret,
    new_session_id,
    parse_create_request,
)

MERCHANT = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
USDC_BASE = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
TX = "0x" + "ab" * 32


def make_session(**changes: Any) -> Session:
    """A session as the engine assembles it: the stored request data plus its own state."""
    request = parse_create_request(
        {
            "destination": {
                "type": "evm",
                "address": MERCHANT,
                "chainId": 8453,
                "tokenAddress": USDC_BASE,
                "amountUnits": "25",
            },
            "display": {"title": "Top up", "verb": "Deposit"},
            "metadata": {"orderId": "A-1001"},
        }
    )
    stored = request.to_session_data(Catalog.default())
    fields: dict[str, Any] = {
        **stored,
        "sessionId": new_session_id(),
        "status": "requires_payment_method",
        "clientSecret": new_client_secret(),
        "createdAt": 1_700_000_000,
        "expiresAt": 1_700_003_600,
        "flow": {"name": "deposit", "version": "3"},
        "state": "created",
        "amounts": {"received": "0.00", "delivered": "0.00", "refunded": "0.00", "held": "0.00"},
        "history": [{"event": "create", "from": None, "to": "created", "at": 1_700_000_000}],
    }
    fields.update(changes)
    return Session.model_validate(fields)


def test_full_view_has_everything_in_camel_case() -> None:
    session = make_session()
    full = session.full()
    assert list(full) == [
        "sessionId",
        "status",
        "destination",
        "display",
        "paymentMethod",
        "metadata",
        "clientSecret",
        "refundAddress",
        "createdAt",
        "expiresAt",
        "flow",
        "state",
        "amounts",
        "txHashes",
        "history",
    ]
    assert full["destination"] == {
        "type": "evm",
        "address": MERCHANT,
        "chainId": 8453,
        "chainName": "base",
        "tokenAddress": USDC_BASE,
        "tokenSymbol": "USDC",
        "decimals": 6,
        "amountUnits": "25.00",
    }
    assert full["metadata"] == {"orderId": "A-1001"}
    assert full["paymentMethod"] is None  # `x | null` in Daimo's types: written as null
    assert full["history"] == [
        {"event": "create", "from": None, "to": "created", "at": 1_700_000_000}
    ]
    assert Session.model_validate(full) == session  # the full view reads back


def test_public_view_hides_metadata_and_the_client_secret() -> None:
    public = make_session().public()
    assert "metadata" not in public
    assert "clientSecret" not in public
    assert public["refundAddress"] is None
    assert public["status"] == "requires_payment_method"


def test_a_delivered_session_shows_its_delivery() -> None:
    session = make_session(
        status="succeeded",
        state="completed",
        amounts={"received": "25.00", "delivered": "25.00", "refunded": "0.00", "held": "0.00"},
        txHashes=[TX],
    )
    full = session.full()
    full["destination"]["delivery"] = {"txHash": TX, "receivedUnits": "25.00"}
    session = Session.model_validate(full)
    assert session.public()["destination"]["delivery"] == {"txHash": TX, "receivedUnits": "25.00"}
    assert session.public()["txHashes"] == [TX]


def test_python_names_work_too() -> None:
    session = make_session()
    assert session.session_id == session.full()["sessionId"]
    assert session.destination.chain_id == 8453
    same = Session(**{**session.model_dump(), "client_secret": session.client_secret})
    assert same == session


def test_ids_and_secrets_are_random() -> None:
    ids = {new_session_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) == 32 and i == i.lower() and int(i, 16) >= 0 for i in ids)
    assert new_client_secret() != new_client_secret()
    assert len(new_client_secret()) >= 43  # 256 bits


@pytest.mark.parametrize(
    "change",
    [
        {"sessionId": "ABC"},
        {"amounts": {"received": "1e3", "delivered": "0", "refunded": "0", "held": "0"}},
        {"amounts": {"received": "-1", "delivered": "0", "refunded": "0", "held": "0"}},
        {"state_name": "created"},  # a misspelt field fails loudly
    ],
)
def test_a_malformed_session_is_a_bug_caught_early(change: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        make_session(**change)


def test_flow_versions_are_text() -> None:
    assert make_session(flow={"name": "deposit", "version": 3}).flow.version == "3"
