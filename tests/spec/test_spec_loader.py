"""load_flow: YAML text → checked FlowSpec, or every shape mistake with its position."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowengine import FlowSpec, FlowValidationError, load_flow
from flowengine.errors import Problem

HEADER = "flowengine: 1\nname: t\nversion: 1\n"
SMALL = HEADER + "states:\n  a: {initial: true}\n  b: {final: true}\n"
GO = "transitions:\n  - {event: go, from: a, to: b}\n"
FLOWS = Path(__file__).resolve().parents[2] / "flows"


def problems(text: str) -> list[Problem]:
    with pytest.raises(FlowValidationError) as info:
        load_flow("inline.yaml", text=text)
    return list(info.value.problems)


@pytest.mark.parametrize("path", sorted(FLOWS.glob("*.yaml")), ids=lambda p: p.name)
def test_the_shipped_flows_load(path: Path) -> None:
    spec = load_flow(path)
    assert spec.source is not None
    assert spec.source.file == str(path)
    assert spec.source.text == path.read_text(encoding="utf-8")
    assert spec.states[spec.initial_state].initial


def test_short_forms_are_normalised() -> None:
    spec = load_flow(
        "inline.yaml",
        text=HEADER.replace("version: 1", "version: 7")
        + "states:\n  a: {initial: true, emit: x.y}\n  b: {final: true}\n"
        + "transitions:\n  - {event: go, from: a, to: b, guards: amount_fixed, effects: "
        "evm.call}\n",
    )
    assert spec.version == "7"
    (transition,) = spec.transitions
    assert transition.sources == ["a"]
    assert transition.guards == ["amount_fixed"]
    assert transition.effects == ["evm.call"]
    assert spec.states["a"].emit == ["x.y"]
    assert transition.condition_text() == "amount_fixed"


def test_the_source_is_kept_for_later_reports() -> None:
    spec = load_flow("inline.yaml", text=SMALL + GO)
    assert spec.source is not None
    assert spec.source.positions.locate(("transitions", 0, "to")).line == 8


def test_a_missing_required_key_points_at_the_mapping_that_lacks_it() -> None:
    found = problems(SMALL + "transitions:\n  - {event: go, from: a}\n")
    assert [(p.line, p.column, p.message, p.hint) for p in found] == [
        (8, 5, "missing required key 'to'", "add 'to: …' here")
    ]


def test_a_missing_top_level_key() -> None:
    found = problems("flowengine: 1\nversion: 1\nstates: {a: {initial: true, final: true}}\n")
    assert any(p.message == "missing required key 'name'" for p in found)


def test_an_unknown_key_at_the_top_gets_a_suggestion() -> None:
    (problem,) = problems(SMALL + GO + "transition: []\n")
    assert (problem.line, problem.column) == (9, 1)
    assert problem.message == "unknown key 'transition'"
    assert problem.hint == "did you mean 'transitions'?"


def test_a_badly_formed_name() -> None:
    (problem,) = problems(SMALL + "transitions:\n  - {event: Go, from: a, to: b}\n")
    assert (problem.line, problem.column) == (8, 13)
    assert problem.message == "'Go' is not a valid name here"
    assert "lower-case letters" in problem.hint


def test_an_unsupported_language_version() -> None:
    found = problems(SMALL.replace("flowengine: 1", "flowengine: 2") + GO)
    assert [(p.line, p.message, p.hint) for p in found] == [
        (1, "unsupported flow-language version", "write 'flowengine: 1'")
    ]


def test_a_wrong_type_gets_a_hint() -> None:
    (problem,) = problems(SMALL + "transitions: {event: go}\n")
    assert problem.line == 7
    assert problem.hint == "write a list, e.g. [a, b]"


def test_a_timer_needs_exactly_one_clock() -> None:
    text = HEADER + (
        "states:\n  a:\n    initial: true\n    timers:\n"
        "      - {event: go, after: 5m, at: expires_at}\n"
        "      - {event: go}\n"
        "  b: {final: true}\n" + GO
    )
    found = problems(text)
    assert [(p.line, p.column) for p in found] == [(8, 9), (9, 9)]
    assert all("exactly one of 'after: <duration>' or 'at: expires_at'" in p.message for p in found)


def test_empty_states_and_empty_version() -> None:
    found = problems('flowengine: 1\nname: t\nversion: ""\nstates: {}\n')
    assert [(p.line, p.hint) for p in found] == [
        (3, "this may not be empty"),
        (4, "this may not be empty"),
    ]


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just text\n"])
def test_a_document_that_is_not_a_mapping(text: str) -> None:
    (problem,) = problems(text)
    assert (problem.line, problem.column) == (1, 1)
    assert problem.message == "a flow file must be a mapping"


def test_shape_problems_are_all_reported() -> None:
    found = problems(
        "flowengine: 1\nname: Bad\nversion: 1\nstates:\n  a: {initial: true, finl: true}\n"
        "transitions:\n  - {event: go, from: a}\n"
    )
    assert [p.message for p in found] == [
        "'Bad' is not a valid name here",
        "unknown key 'finl'",
        "missing required key 'to'",
    ]


def test_a_state_with_no_body_is_reported_where_it_is() -> None:
    # 'review:' with nothing after it is null; pydantic's own message comes through.
    found = problems(SMALL + "  review:\n" + GO)
    (problem,) = found
    assert problem.line == 7
    assert "valid dictionary" in problem.message


def test_a_flow_spec_is_frozen() -> None:
    spec = load_flow("inline.yaml", text=SMALL + GO)
    assert isinstance(spec, FlowSpec)
    with pytest.raises(ValueError, match="frozen"):
        spec.name = "other"
