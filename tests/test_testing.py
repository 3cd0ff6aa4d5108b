"""flowengine.testing.FlowWalk: the walk the generated tests are made of must fail when
the flow does not do what a step claims (otherwise every generated test would pass)."""

from __future__ import annotations

import pytest

from flowengine.spec import load_flow
from flowengine.testing import FlowWalk
from tests.conftest import FLOWS


def deposit_walk() -> FlowWalk:
    return FlowWalk(load_flow(FLOWS / "deposit.yaml"), amount_fixed=True, has_calldata=False)


def test_a_walk_follows_the_flow() -> None:
    walk = deposit_walk()
    walk.starts_in("created", effects=[])
    walk.send("payment_detected", to="paid", effects=["evm.deliver"], pay="exact")
    walk.outcome("evm.deliver.done", to="delivered", effects=["evm.settle"])
    walk.outcome("evm.settle.done", to="completed", effects=[])
    walk.visited(["created", "paid", "delivered", "completed"])
    assert walk.engine.get(walk.session_id).amounts.delivered == "25.00"


def test_a_wrong_target_or_effect_fails_the_step() -> None:
    with pytest.raises(AssertionError, match="should lead to 'delivered'"):
        deposit_walk().send("payment_detected", to="delivered", effects=["evm.deliver"])
    with pytest.raises(AssertionError, match="requested effects"):
        deposit_walk().send("payment_detected", to="paid", effects=[])


def test_claiming_a_refusal_for_an_accepted_event_fails() -> None:
    with pytest.raises(AssertionError, match="was accepted"):
        deposit_walk().refused("payment_detected")
    deposit_walk().refused("evm.settle.done")  # created does not take it: passes
