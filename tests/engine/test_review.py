"""Sessions a person must resolve: the review queue, allowed events, audited overrides,
and reconciling amounts against the log."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowengine.cli import main
from flowengine.clock import ManualClock
from flowengine.engine import Engine
from flowengine.errors import TransitionNotAllowed, ValidationError
from flowengine.flows import FlowRegistry
from flowengine.reconcile import reconcile
from tests.conftest import FLOWS
from tests.factories import create_request

PAYMENT = {"units": 25_000_000, "txHash": "0x" + "aa" * 32}


def stuck_in_review(engine: Engine) -> str:
    """A session whose delivery reverted and whose refund then failed too."""
    sid = engine.create_session(create_request()).session_id
    engine.send(sid, "payment_detected", PAYMENT)
    engine.send(sid, "evm.deliver.failed")
    engine.send(sid, "evm.refund.failed")
    return sid


def test_review_lists_waiting_sessions_oldest_first(engine: Engine, clock: ManualClock) -> None:
    first = stuck_in_review(engine)
    clock.advance(60)
    second = stuck_in_review(engine)
    engine.create_session(create_request())  # not in review
    assert [r.session_id for r in engine.review_queue()] == [first, second]


def test_allowed_events_show_targets_guards_and_whether_they_hold(engine: Engine) -> None:
    sid = engine.create_session(create_request())  # amount fixed
    choices = {(c.event, c.target): c for c in engine.allowed_events(sid.session_id)}
    assert choices[("payment_detected", "paid")].enabled
    assert choices[("payment_detected", "paid")].guard == "amount_fixed"
    assert not choices[("select_amount", "amount_selected")].enabled  # unless amount_fixed
    assert choices[("expire", "expired")].kind == "timer"


def test_an_override_is_applied_and_audited(engine: Engine) -> None:
    sid = stuck_in_review(engine)
    assert {c.event for c in engine.allowed_events(sid)} == {"resolve_completed", "resolve_bounced"}
    done = engine.override(
        sid, "resolve_bounced", reason="refunded by hand, tx 0xfeed", actor="ops@acme"
    )
    assert done.state == "bounced"
    row = engine.history(sid)[-1]
    assert row.meta == {
        "override": True,
        "actor": "ops@acme",
        "reason": "refunded by hand, tx 0xfeed",
    }
    assert engine.review_queue() == []


def test_an_override_needs_a_reason_and_an_allowed_event(engine: Engine) -> None:
    sid = stuck_in_review(engine)
    with pytest.raises(ValidationError):
        engine.override(sid, "resolve_bounced", reason=" ", actor="ops")
    with pytest.raises(TransitionNotAllowed):
        engine.override(sid, "payment_detected", reason="why not", actor="ops", payload=PAYMENT)


def test_reconcile_finds_no_mismatch_after_real_traffic(engine: Engine) -> None:
    stuck_in_review(engine)
    sid = engine.create_session(create_request()).session_id
    engine.send(sid, "payment_detected", PAYMENT)
    engine.send(sid, "evm.deliver.done", PAYMENT)
    result = reconcile(engine.store, ["deposit"])
    assert (result.sessions, result.mismatches) == (2, [])


def test_the_cli_lists_reviews_overrides_and_reconciles(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    engine = Engine(FlowRegistry.from_directory(FLOWS), url)
    sid = stuck_in_review(engine)
    engine.store.close()
    flows = ["--flows", str(FLOWS), "--store", url]
    assert main(["sessions", "review", *flows]) == 0
    listed = capsys.readouterr().out
    assert sid in listed
    assert "1 session waiting for review" in listed
    assert main(["sessions", "override", sid, *flows]) == 0
    assert "resolve_bounced" in capsys.readouterr().out
    args = ["sessions", "override", sid, "resolve_completed", "--reason", "paid by hand"]
    assert main([*args, "--actor", "ops", *flows]) == 0
    assert "review → completed (by ops)" in capsys.readouterr().out
    assert main(["reconcile", *flows]) == 0
    assert "1 sessions reconciled, 0 mismatches" in capsys.readouterr().out


def test_review_and_reconcile_cover_every_flow_the_store_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Run from anywhere (no flows/ there), or after a flow was retired from flows/: the
    # store knows its flows and their versions, so nothing goes unchecked.
    url = f"sqlite:///{tmp_path / 's.db'}"
    engine = Engine(FlowRegistry.from_directory(FLOWS), url)
    sid = stuck_in_review(engine)
    engine.store.close()
    elsewhere = ["--flows", str(tmp_path / "no-flows-here"), "--store", url]
    assert main(["sessions", "review", *elsewhere]) == 0
    assert sid in capsys.readouterr().out
    assert main(["reconcile", *elsewhere]) == 0
    assert "1 sessions reconciled, 0 mismatches" in capsys.readouterr().out
