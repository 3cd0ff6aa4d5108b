"""Request builders shared by the tests: a valid create-session body, varied by keyword."""

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
