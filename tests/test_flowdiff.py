"""``flowengine flows diff``: what changed between two versions, and which live sessions
it touches. v2 texts are edits of the shipped deposit flow, as a merchant would make."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import yaml

from flowengine import flowdiff
from flowengine.clock import ManualClock
from flowengine.engine import Engine
from flowengine.errors import FlowEngineError
from flowengine.flowdiff import add_command, diff_flows, live_counts
from flowengine.flows import FlowRegistry
from flowengine.replay import add_commands as add_replay_commands
from flowengine.spec import FlowSpec, load_flow
from tests.conftest import FLOWS
from tests.factories import create_request, without_refund_on_reverted_delivery

V1 = (FLOWS / "deposit.yaml").read_text()
PAYMENT = {"units": 25_000_000, "txHash": "0x" + "aa" * 32}


def v2(text: str) -> str:
    return text.replace("version: 1\n", "version: 2\n", 1)


def spec(text: str = V1) -> FlowSpec:
    return load_flow("flows/deposit.yaml", text=text)


NO_REFUND = without_refund_on_reverted_delivery(v2(V1))
"""v2: a reverted delivery no longer refunds."""

ON_HOLD = v2(V1).replace(
    "  review:\n",
    "  on_hold:\n    label: On hold\n    timers: [{after: 1h, event: release}]\n  review:\n",
) + (
    "  - {event: hold, from: paid, to: on_hold}\n  - {event: release, from: on_hold, to: review}\n"
)
"""v2: a new state, reached by a new event, left by a timer."""


RESOLVE_BOUNCED = (
    "  - event: resolve_bounced\n    from: review\n    to: bounced\n"
    "    description: a person refunded the payer by hand\n"
)


SETTLE_BY_CALL = "effect: evm.call\n    outcomes: {done: completed, failed: review}\n"


def _edit(text: str, *edits: tuple[str, str]) -> str:
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    return text


def changes(diff: flowdiff.FlowDiff, group: str) -> list[tuple[str, str]]:
    return [(c.op, c.key) for c in getattr(diff, group)]


def test_the_same_flow_has_no_differences() -> None:
    diff = diff_flows(spec(), load_flow(FLOWS / "deposit.yaml"))

    assert diff.identical
    assert diff.affected_states() == set()
    assert diff.format() == "flow deposit: version 1 → 1: no differences"
    assert diff.to_dict()["identical"] is True


def test_dropping_the_refund_changes_the_state_and_affects_it() -> None:
    diff = diff_flows(spec(), spec(NO_REFUND))

    change, settle = diff.states
    assert (change.op, change.key) == ("changed", "paid")
    assert change.before == {"outcomes": {"done": "delivered", "failed": "refunding"}}
    assert change.after == {"outcomes": {"done": "delivered", "failed": "bounced"}}
    assert change.details == ("outcome failed: refunding → bounced",)
    assert (settle.key, settle.details) == ("delivered", ("outcome failed: review → refunding",))
    assert diff.affected_states() == {"paid", "delivered"}
    assert not diff.transitions
    assert not diff.events  # evm.deliver.failed still leads somewhere
    assert "  ~ paid: outcome failed: refunding → bounced" in diff.format().splitlines()


def test_a_new_state_event_and_timer_are_additions_that_affect_nothing_old() -> None:
    diff = diff_flows(spec(), spec(ON_HOLD))

    assert changes(diff, "states") == [("added", "on_hold")]
    assert changes(diff, "transitions") == [
        ("added", "hold from paid"),
        ("added", "release from on_hold"),
    ]
    assert changes(diff, "timers") == [("added", "on_hold: release")]
    assert changes(diff, "events") == [("added", "release"), ("added", "hold")]
    assert diff.affected_states() == set()
    text = diff.format()
    assert "  + hold from paid → on_hold" in text.splitlines()
    assert text.endswith("\naffected states: none")


def test_transitions_are_keyed_by_event_and_source() -> None:
    edited = _edit(
        v2(V1),
        ("    guards: amount_fixed\n", "    guards: [amount_fixed, has_calldata]\n"),
        ("from: [created, amount_selected]\n    to: expired", "from: created\n    to: expired"),
        ("funds\n    timers:\n      - {at: expires_at, event: expire}\n", "funds\n"),
        (
            "from: review\n    to: bounced\n",
            "from: review\n    to: bounced\n    effects: evm.refund\n",
        ),
    )
    diff = diff_flows(spec(), spec(edited))

    assert changes(diff, "transitions") == [
        ("removed", "expire from amount_selected"),
        ("changed", "payment_detected from created"),
        ("changed", "resolve_bounced from review"),
    ]
    guarded, refunds = diff.transitions[1], diff.transitions[2]
    assert guarded.details == ("guards [amount_fixed] → [amount_fixed, has_calldata]",)
    assert guarded.before == [{"to": "paid", "guards": ["amount_fixed"]}]
    assert refunds.details == ("effects (none) → [evm.refund]",)
    assert changes(diff, "guards") == [("added", "has_calldata")]
    assert changes(diff, "timers") == [("removed", "amount_selected: expire")]
    assert diff.affected_states() == {"amount_selected", "created", "review"}


def test_guarded_branches_of_one_event_are_compared_branch_by_branch() -> None:
    branches = V1.replace(
        "  - event: payment_detected\n    from: amount_selected\n",
        "  - event: payment_detected\n    from: created\n    to: review\n    unless: amount_fixed\n"
        "  - event: payment_detected\n    from: amount_selected\n",
    )
    edited = v2(branches).replace(
        "    to: review\n    unless: amount_fixed\n", "    to: expired\n    unless: amount_fixed\n"
    )
    diff = diff_flows(spec(branches.replace("version: 1", "version: 0")), spec(edited))

    (change,) = diff.transitions
    assert change.key == "payment_detected from created"
    assert change.details == ("branch [not amount_fixed]: to review → expired",)
    assert len(change.after) == 2


def test_removed_and_changed_states_timers_and_names() -> None:
    edited = _edit(
        v2(V1),
        ("status: requires_review\n    emit: session.requires_review\n", "status: held\n"),
        ("- {at: expires_at, event: expire}\n  paid:", "- {after: 30m, event: expire}\n  paid:"),
        ("    label: Waiting for the payer\n", "    label: Waiting for you\n"),
        (
            "effect: evm.settle\n    outcomes: {done: completed, failed: review}\n",
            SETTLE_BY_CALL,
        ),
        (RESOLVE_BOUNCED, ""),
    )
    diff = diff_flows(spec(), spec(edited))

    assert changes(diff, "states") == [
        ("changed", "created"),
        ("changed", "delivered"),
        ("changed", "review"),
    ]
    created, delivered, review = diff.states
    assert created.cosmetic
    assert delivered.details == ("effect: evm.settle → evm.call",)
    assert review.details == (
        "status: requires_review → held",
        "emit: [session.requires_review] → (none)",
    )
    assert changes(diff, "timers") == [("changed", "amount_selected: expire")]
    assert diff.timers[0].details == ("at expiry → after 30m",)
    # With no state left whose status is requires_review, the pending/unknown arms the
    # language supplied (to review) are gone too: a change of behaviour, so it shows.
    assert changes(diff, "events") == [
        ("removed", "evm.deliver.pending"),
        ("removed", "evm.deliver.unknown"),
        ("removed", "evm.settle.done"),
        ("removed", "evm.settle.failed"),
        ("removed", "evm.settle.pending"),
        ("removed", "evm.settle.unknown"),
        ("removed", "evm.refund.pending"),
        ("removed", "evm.refund.unknown"),
        ("removed", "resolve_bounced"),
        ("added", "evm.call.done"),
        ("added", "evm.call.failed"),
    ]
    assert changes(diff, "effects") == [("removed", "evm.settle"), ("added", "evm.call")]
    assert diff.affected_states() == {"amount_selected", "delivered", "review"}

    text = diff.format()
    assert "  ~ created: label 'Waiting for the payer' → 'Waiting for you'  (cosmetic)" in text
    assert "  - resolve_bounced from review: → bounced" not in text
    assert "  - resolve_bounced from review → bounced" in text
    assert text.index("\nstates\n") < text.index("\ntransitions") < text.index("\ntimers")
    assert "affected states: amount_selected, delivered, review" in text


def test_to_dict_is_json() -> None:
    both = ON_HOLD.replace("failed: refunding}\n  delivered", "failed: bounced}\n  delivered")
    both = both.replace("{done: completed, failed: review}", "{done: completed, failed: refunding}")
    diff = diff_flows(spec(), spec(both))

    data = json.loads(json.dumps(diff.to_dict()))

    assert data["flow"] == "deposit"
    assert (data["old"]["version"], data["new"]["version"]) == ("1", "2")
    assert data["affected_states"] == ["paid", "delivered"]
    added = next(c for c in data["changes"]["states"] if c["key"] == "on_hold")
    assert added["op"] == "added"
    assert added["after"]["timers"] == [{"event": "release", "after": "1h"}]
    assert list(data["changes"]) == [
        *("flow", "states", "transitions", "timers", "events", "guards", "effects")
    ]


def test_an_upgrade_map_is_a_flow_change() -> None:
    mapped = v2(V1) + "\nupgrade:\n  from: 1\n  migrate: {created: created}\n"

    (change,) = diff_flows(spec(), spec(mapped)).flow

    assert change.key == "upgrade"
    assert change.details == ("pinned → from 1 migrating created→created",)


# -- live sessions ----------------------------------------------------------------------------


def sessions_in(engine: Engine) -> dict[str, str]:
    """Deposit sessions (v1) waiting, paid, refunding, in review and completed."""
    names = ("waiting", "paid", "paid_too", "refunding", "review", "completed")
    sid = {name: engine.create_session(create_request()).session_id for name in names}
    for name in ("paid", "paid_too", "refunding", "review", "completed"):
        engine.send(sid[name], "payment_detected", PAYMENT)
    for name in ("refunding", "review"):
        engine.send(sid[name], "evm.deliver.failed")
    engine.send(sid["review"], "evm.refund.failed")
    engine.send(sid["completed"], "evm.deliver.done", PAYMENT)
    engine.send(sid["completed"], "evm.settle.done")
    return sid


def test_live_counts_leave_out_sessions_in_final_states(engine: Engine) -> None:
    sessions_in(engine)
    engine.create_session(create_request(flow="daimo"))  # another flow

    counts = live_counts(engine.store, "deposit")

    assert counts == {"created": 1, "paid": 2, "refunding": 1, "review": 1}


def test_final_is_read_from_each_session_s_own_version(engine: Engine) -> None:
    """v2 makes 'review' final; a v1 session in review is still live, a v2 one is not."""
    review_final = v2(V1).replace(
        "    status: requires_review\n", "    status: requires_review\n    final: true\n"
    )
    review_final = review_final.split("  - event: resolve_completed")[0]
    sessions_in(engine)
    engine.flows.add(spec(review_final))  # pinned: v1 sessions stay on v1
    sid = engine.create_session(create_request()).session_id
    engine.send(sid, "payment_detected", PAYMENT)
    engine.send(sid, "evm.deliver.failed")
    engine.send(sid, "evm.refund.failed")
    assert (engine.record(sid).flow_version, engine.record(sid).state) == ("2", "review")

    counts = live_counts(engine.store, "deposit")

    assert counts == {"created": 1, "paid": 2, "refunding": 1, "review": 1}


def test_a_version_whose_text_the_store_lacks(clock: ManualClock) -> None:
    """A flow built in code has no text to store: only the caller can say what it is."""
    data = yaml.safe_load(V1) | {"description": "built in code by this test"}
    in_code = FlowSpec.model_validate(data)  # a hash of its own: compiled here, not cached
    engine = Engine(FlowRegistry([in_code]), "memory://", clock)
    engine.create_session(create_request())

    with pytest.raises(FlowEngineError, match="whose text the store does not have"):
        live_counts(engine.store, "deposit")
    assert live_counts(engine.store, "deposit", known=[in_code]) == {"created": 1}


# -- the command ------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="flowengine")
    commands = root.add_subparsers(required=True, metavar="COMMAND")
    add_command(commands)
    return root


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    result: int = args.run(args)
    return result


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    old, new = tmp_path / "deposit.yaml", tmp_path / "deposit.v2.yaml"
    old.write_text(V1)
    new.write_text(NO_REFUND)
    return old, new


def test_flows_diff_prints_text_and_exits_0(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = files

    assert run(["flows", "diff", str(old), str(new)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("flow deposit: version 1 → 2 (2 changed)\n")
    assert "  ~ paid: outcome failed: refunding → bounced" in out

    assert run(["flows", "diff", str(old), str(old)]) == 0
    assert capsys.readouterr().out == "flow deposit: version 1 → 1: no differences\n"


def test_flows_diff_with_a_store_counts_live_sessions_in_affected_states(
    files: tuple[Path, Path],
    engine: Engine,
    store_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sessions_in(engine)
    if store_url.startswith("memory"):  # the command opens the URL: share this one store
        monkeypatch.setattr(flowdiff, "open_store", lambda url, existing=False: engine.store)
    old, new = files
    edited = _edit(NO_REFUND, (RESOLVE_BOUNCED, ""))
    new.write_text(edited)

    assert run(["flows", "diff", str(old), str(new), "--store", store_url]) == 0
    out = capsys.readouterr().out
    assert "live sessions in affected states: 3" in out
    lines = out.splitlines()
    assert any(line.split()[:2] == ["paid", "2"] for line in lines)
    assert any(line.split()[:2] == ["review", "1"] for line in lines)

    assert run(["flows", "diff", str(old), str(new), "--store", store_url, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["live_sessions"] == {"paid": 2, "delivered": 0, "review": 1}
    assert data["affected_states"] == ["paid", "delivered", "review"]


def test_add_command_returns_the_flows_actions_for_more(
    files: tuple[Path, Path],
) -> None:
    root = argparse.ArgumentParser(prog="flowengine")
    actions = add_command(root.add_subparsers(required=True))
    add_replay_commands(actions)

    args = root.parse_args(["flows", "check", str(files[1]), "--store", "memory://"])

    assert args.flow == files[1]
    assert root.parse_args(["flows", "diff", "a.yaml", "b.yaml", "--json"]).json
