"""What the benchmark scripts share: the test server and the session they create.

Each script puts the repository root on ``sys.path`` first, then imports this.
"""

from __future__ import annotations

import os
from typing import Any

PG_DSN = os.environ.get("FLOWENGINE_TEST_PG", "postgresql://root@127.0.0.1:5432/test")
TX = "0x" + "ab" * 32  # the transaction hash every benchmarked payment reports


def session_request(amount: str | None = "25.00") -> dict[str, Any]:
    """A create-session body for Base USDC; the payer chooses the amount when None."""
    destination: dict[str, Any] = {
        "type": "evm",
        "chainId": 8453,
        "address": "0x1111111111111111111111111111111111111111",
        "tokenAddress": "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
    }
    if amount is not None:
        destination["amountUnits"] = amount
    return {
        "destination": destination,
        "display": {"title": "Bench", "verb": "Pay"},
        "refundAddress": "0x2222222222222222222222222222222222222222",
    }
