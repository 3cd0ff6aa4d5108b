"""Inputs shared by the tests: a valid create-session body, varied by keyword, and
variants of the shipped deposit flow."""

from __future__ import annotations

from typing import Any

BASE_USDC = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
MERCHANT = "0x1111111111111111111111111111111111111111"
PAYER_REFUND = "0x2222222222222222222222222222222222222222"


def create_request(
    *, flow: str = "deposit", amount: str | None = "25.00", **extra: Any
) -> dict[str, Any]:
    destination: dict[str, Any] = {
        "type": "evm",
        "address": MERCHANT,
        "chainId": 8453,
        "tokenAddress": BASE_USDC,
    }
    if amount is not None:
        destination["amountUnits"] = amount
    request: dict[str, Any] = {
        "destination": destination,
        "display": {"title": "Deposit to Acme", "verb": "Deposit"},
        "refundAddress": PAYER_REFUND,
        "flow": flow,
        "metadata": {"orderId": "A-1"},
    }
    request.update(extra)
    return request


def without_refund_on_reverted_delivery(deposit: str) -> str:
    """``deposit`` (the shipped flow's text) where a reverted delivery bounces instead
    of refunding: a breaking change for sessions that are refunding. A failed
    settlement refunds instead, so the refunding state stays reachable."""
    edits = (
        ("{done: delivered, failed: refunding}", "{done: delivered, failed: bounced}"),
        ("{done: completed, failed: review}", "{done: completed, failed: refunding}"),
    )
    for old, new in edits:
        assert old in deposit, old
        deposit = deposit.replace(old, new)
    return deposit
