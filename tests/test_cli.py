"""The flowengine command: schema and simulate (validate is in tests/spec)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from flowengine.cli import main

FLOWS = Path(__file__).resolve().parent.parent / "flows"
DEPOSIT = str(FLOWS / "deposit.yaml")
FIXED = '{"destination": {"amountUnits": "25.00"}}'


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- schema ----------------------------------------------------------------------------


def test_schema_is_json_with_the_flow_keys(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "schema")
    assert (code, err) == (0, "")
    schema = json.loads(out)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "states" in schema["properties"]
    assert set(schema["required"]) == {"flowengine", "name", "version", "states"}
    assert schema["additionalProperties"] is False
    transition = schema["$defs"]["TransitionSpec"]
    assert "from" in transition["properties"]
    assert set(transition["required"]) == {"event", "from", "to"}


def _accepts(schema: dict[str, Any], value: object) -> bool:
    """Whether a (sub)schema's type allows ``value``; enough for the short forms below."""
    if "anyOf" in schema:
        return any(_accepts(option, value) for option in schema["anyOf"])
    kind = schema.get("type")
    python = {
        "string": str,
        "integer": int,
        "array": list,
        "object": dict,
        "boolean": bool,
        "null": type(None),
    }
    return kind is None or isinstance(value, python[kind])


@pytest.mark.parametrize("path", sorted(FLOWS.glob("*.yaml")), ids=lambda p: p.name)
def test_the_schema_accepts_the_shipped_flows(
    capsys: pytest.CaptureFixture[str], path: Path
) -> None:
    _, out, _ = run(capsys, "schema")
    schema = json.loads(out)
    data = yaml.safe_load(path.read_text())
    assert _accepts(schema["properties"]["version"], data["version"])
    transition = schema["$defs"]["TransitionSpec"]["properties"]
    for item in data["transitions"]:
        for key in ("from", "guards", "unless", "effects"):
            if key in item:
                assert _accepts(transition[key], item[key]), (key, item[key])
    state = schema["$defs"]["StateSpec"]["properties"]
    for body in data["states"].values():
        if "emit" in body:
            assert _accepts(state["emit"], body["emit"]), body["emit"]


@pytest.mark.parametrize("command", ["diagram", "testgen"])
def test_an_output_file_that_cannot_be_written_is_an_error_not_a_traceback(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    in_the_way = tmp_path / ("flow.svg" if command == "diagram" else "test_flow.py")
    in_the_way.mkdir()  # -o names a directory
    code, _, err = run(capsys, command, DEPOSIT, "-o", str(in_the_way))
    assert (code, err) == (1, f"error: {in_the_way}: Is a directory\n")


def test_a_session_path_and_a_path_to_highlight_are_one_too_many(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # --session draws the session's own path; a --highlight beside it was dropped unsaid.
    argv = ["diagram", "--session", "0" * 32, "--store", "sqlite:///x.db", "--highlight", "paid"]
    code, _, err = run(capsys, *argv)
    assert (code, err) == (
        1,
        "error: --session highlights the session's own path: drop --highlight\n",
    )


# --- simulate --------------------------------------------------------------------------


def steps(out: str) -> list[str]:
    """The printed lines with runs of spaces collapsed (column widths are not the point)."""
    return [" ".join(line.split()) for line in out.splitlines()]


def test_simulate_prints_each_step_and_what_it_requests(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(
        capsys,
        "simulate",
        DEPOSIT,
        "--events",
        "payment_detected, evm.deliver.done,evm.settle.done",
        "--session",
        FIXED,
    )
    assert (code, err) == (0, "")
    printed = steps(out)
    expected = [
        "start → created requests: timer expire at expiry",
        "payment_detected created → paid requests: effect evm.deliver; webhook session.processing",
        "evm.deliver.done paid → delivered requests: effect evm.settle",
        "evm.settle.done delivered → completed requests: webhook session.succeeded",
        "ends in completed (final), status 'completed'",
    ]
    assert printed[-len(expected) :] == expected


def test_simulate_a_non_final_end_and_a_custom_status(capsys: pytest.CaptureFixture[str]) -> None:
    events = "select_amount,payment_detected,evm.deliver.failed,evm.refund.failed"
    code, out, _ = run(capsys, "simulate", DEPOSIT, "--events", events)
    assert code == 0
    assert steps(out)[-1] == "ends in review, status 'requires_review'"


def test_simulate_prints_timers_with_a_duration(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    flow = tmp_path / "timed.yaml"
    flow.write_text(
        "flowengine: 1\nname: timed\nversion: 1\nstates:\n"
        "  a: {initial: true, timers: [{after: 15m, event: expire}]}\n"
        "  b: {final: true}\n"
        "transitions:\n  - {event: expire, from: a, to: b}\n"
    )
    code, out, _ = run(capsys, "simulate", str(flow), "--events", "expire")
    assert code == 0
    printed = steps(out)
    assert "start → a requests: timer expire after 900s" in printed
    assert "expire a → b" in printed
    assert printed[-1] == "ends in b (final), status 'b'"


def test_simulate_a_refused_event_exits_1_with_a_clear_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Without amountUnits the amount_fixed guard refuses payment_detected from created.
    code, out, err = run(capsys, "simulate", DEPOSIT, "--events", "payment_detected")
    assert code == 1
    assert "start → created requests: timer expire at expiry" in steps(out)
    assert not any(line.startswith("ends in") for line in steps(out))
    assert err.startswith("error: ")
    assert err.endswith(
        "in state 'created' does not accept event 'payment_detected' now; events this "
        "state accepts (subject to their guards): expire, select_amount, payment_detected\n"
    )
    assert "Traceback" not in err
    assert err.count("\n") == 1


def test_simulate_an_unknown_event(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "simulate", DEPOSIT, "--events", "refund_now", "--session", FIXED)
    assert code == 1
    assert "does not accept event 'refund_now'" in err


def test_simulate_a_session_that_is_not_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "simulate", DEPOSIT, "--events", "expire", "--session", "{x")
    assert (code, out) == (1, "")
    assert err.startswith("error: --session is not valid JSON: ")


def test_simulate_a_session_that_is_not_an_object(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys, "simulate", DEPOSIT, "--events", "payment_detected", "--session", "[1]"
    )
    assert code == 1
    assert err.startswith("error: ")


def test_simulate_a_broken_flow_reports_its_problems(capsys: pytest.CaptureFixture[str]) -> None:
    broken = Path(__file__).parent / "spec" / "broken" / "unknown_guard.yaml"
    code, out, err = run(capsys, "simulate", str(broken), "--events", "payment_detected")
    assert (code, out) == (1, "")
    assert err.startswith(f"{broken}:14:14: unknown guard 'amount_fixd'")
