"""Deliberately broken flows: each names its file, line, column and how to fix it.

Every file under ``tests/spec/broken/`` carries one kind of mistake (plus, for
``several_mistakes.yaml``, several). The table says where the error must point and what
it must say; a person reading the CLI output should be able to fix the flow from it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flowengine import FlowValidationError, load_flow
from flowengine.cli import main
from flowengine.errors import Problem

BROKEN = Path(__file__).parent / "broken"
FLOWS = Path(__file__).resolve().parents[2] / "flows"


def problems_of(path: Path) -> tuple[Problem, ...]:
    with pytest.raises(FlowValidationError) as info:
        load_flow(path)
    return info.value.problems


# file, where (line:column), message fragment, hint fragment
CASES = [
    ("unknown_target.yaml", "14:9", "unknown state 'piad'", "did you mean 'paid'?"),
    (
        "unreachable_state.yaml",
        "10:3",
        "state 'refunded' is unreachable from the initial state 'created'",
        "add a transition with 'to: refunded'",
    ),
    (
        "dead_end.yaml",
        "8:3",
        "state 'waiting' is a dead end",
        "or mark it 'final: true'",
    ),
    (
        "two_initial_states.yaml",
        "9:5",
        "several initial states ('created' and 'amount_selected')",
        "remove 'initial: true' from 'amount_selected'",
    ),
    (
        "duplicate_key.yaml",
        "10:3",
        "duplicate key 'paid' (first defined at line 8)",
        "each name may appear once",
    ),
    (
        "ambiguous_event.yaml",
        "17:12",
        "event 'payment_detected' from 'created' is already handled by transition #1 "
        "under the same guards",
        "give the two transitions different guards",
    ),
    ("unknown_guard.yaml", "14:14", "unknown guard 'amount_fixd'", "did you mean 'amount_fixed'?"),
    # The fix is in the message; the hint is empty for pydantic value errors.
    ("bare_number_duration.yaml", "9:17", "'30' has no unit; write '30s' or '30m'", ""),
    (
        "yaml_syntax.yaml",
        "7:7",
        "YAML syntax error: expected ',' or '}'",
        "check the indentation and quoting",
    ),
    ("unknown_key.yaml", "9:5", "unknown key 'efect'", "did you mean 'effect'?"),
    (
        "final_with_exit.yaml",
        "15:11",
        "transition 'reopen' leaves final state 'completed'",
        "final states have no way out",
    ),
    ("on_as_key.yaml", "13:5", "unknown key 'on'", "did you mean 'to'?"),
]


@pytest.mark.parametrize(("file", "where", "message", "hint"), CASES)
def test_broken_flow_is_located_and_explained(
    file: str, where: str, message: str, hint: str
) -> None:
    path = BROKEN / file
    found = problems_of(path)
    line, column = (int(part) for part in where.split(":"))
    matching = [p for p in found if message in p.message]
    assert matching, f"no problem says {message!r}; got {[str(p) for p in found]}"
    problem = matching[0]
    assert problem.file == str(path)
    assert (problem.line, problem.column) == (line, column), str(problem)
    assert hint in problem.hint
    if not hint:
        assert problem.hint == ""


def test_every_broken_file_is_in_the_table() -> None:
    listed = {case.values[0] if hasattr(case, "values") else case[0] for case in CASES}
    on_disk = {path.name for path in BROKEN.glob("*.yaml")} - {"several_mistakes.yaml"}
    assert on_disk == listed
    assert len(on_disk) >= 6


def test_a_typo_in_a_target_also_leaves_its_source_without_a_way_out() -> None:
    # The typo cascades: the state the broken transition leaves becomes a dead end. Both
    # are reported, the real cause with a did-you-mean hint.
    messages = [p.message for p in problems_of(BROKEN / "unknown_target.yaml")]
    assert messages == [
        "state 'amount_selected' is a dead end: not final, and nothing leads out of it",
        "unknown state 'piad'",
    ]


def test_several_mistakes_are_all_reported_at_once_sorted_by_line() -> None:
    path = BROKEN / "several_mistakes.yaml"
    found = problems_of(path)
    assert [(p.line, p.column) for p in found] == sorted((p.line, p.column) for p in found)
    assert [(p.line, p.column, p.message) for p in found] == [
        (9, 29, "timer event 'expier' has no transition from 'created'"),
        (10, 3, "state 'amount_selected' is unreachable from the initial state 'created'"),
        (12, 13, "unknown effect 'evm.delivr'"),
        (21, 9, "unknown state 'amount_selectd'"),
    ]
    assert "did you mean 'evm.deliver'?" in found[2].hint
    assert "did you mean 'amount_selected'?" in found[3].hint
    assert all(p.file == str(path) for p in found)


def test_the_error_text_lists_every_problem() -> None:
    with pytest.raises(FlowValidationError) as info:
        load_flow(BROKEN / "several_mistakes.yaml")
    text = str(info.value)
    assert text.startswith("4 problems in flow:\n")
    assert text.count("several_mistakes.yaml:") == 4
    assert info.value.first.line == 9


LOCATED = re.compile(r"^(?P<file>.+\.yaml):(?P<line>\d+):(?P<column>\d+): (?P<message>.+)$")


def test_cli_validate_prints_file_line_column_and_exits_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    files = sorted(BROKEN.glob("*.yaml"))
    assert main(["validate", *map(str, files)]) == 1
    err = capsys.readouterr().err.splitlines()
    located = [LOCATED.match(line) for line in err if not line.startswith("    hint: ")]
    assert all(located), err
    assert {m["file"] for m in located if m} == {str(f) for f in files}
    hints = [line for line in err if line.startswith("    hint: ")]
    assert "    hint: did you mean 'paid'?" in hints
    assert f"{BROKEN / 'unknown_key.yaml'}:9:5: unknown key 'efect'" in err


def test_cli_validate_one_broken_file(capsys: pytest.CaptureFixture[str]) -> None:
    path = BROKEN / "unknown_guard.yaml"
    assert main(["validate", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"{path}:14:14: unknown guard 'amount_fixd'\n    hint: did you mean 'amount_fixed'?\n"
    )


def test_cli_validate_passes_on_the_shipped_flows(capsys: pytest.CaptureFixture[str]) -> None:
    flows = sorted(FLOWS.glob("*.yaml"))
    assert flows
    assert main(["validate", *map(str, flows)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert len(out.splitlines()) == len(flows)
    assert all(line.startswith("ok  ") for line in out.splitlines())


def test_cli_validate_reports_a_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "no/such/flow.yaml"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("no/such/flow.yaml:1:1: cannot read flow file")
