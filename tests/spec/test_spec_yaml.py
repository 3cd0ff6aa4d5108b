"""The YAML layer: data plus the line and column of every key and value, duplicates refused."""

from __future__ import annotations

import pytest

from flowengine import FlowValidationError, load_flow
from flowengine.spec.yamlpos import Position, YamlSyntaxError, load_with_positions

DOC = """\
flowengine: 1
states:
  created:
    initial: true
    timers:
      - {at: expires_at, event: expire}
transitions:
  - event: expire
    from: [created, waiting]
"""


def test_data_is_plain_python() -> None:
    data, _ = load_with_positions(DOC, "f.yaml")
    assert data == {
        "flowengine": 1,
        "states": {
            "created": {"initial": True, "timers": [{"at": "expires_at", "event": "expire"}]}
        },
        "transitions": [{"event": "expire", "from": ["created", "waiting"]}],
    }


def test_keys_and_values_have_their_own_positions() -> None:
    _, at = load_with_positions(DOC, "f.yaml")
    assert at.file == "f.yaml"
    assert at.keys[("states", "created")] == Position(3, 3)
    assert at.values[("states", "created")] == Position(4, 5)
    assert at.values[("states", "created", "initial")] == Position(4, 14)
    assert at.values[("states", "created", "timers", 0)] == Position(6, 9)
    assert at.values[("states", "created", "timers", 0, "event")] == Position(6, 33)
    assert at.values[("transitions", 0, "from", 1)] == Position(9, 21)


def test_locate_prefers_the_key_when_asked_and_falls_back_to_the_nearest_ancestor() -> None:
    _, at = load_with_positions(DOC, "f.yaml")
    assert at.locate(("states", "created"), key=True) == Position(3, 3)
    assert at.locate(("states", "created")) == Position(4, 5)
    # A list item has no key: its value's position is used.
    assert at.locate(("transitions", 0), key=True) == Position(8, 5)
    # Paths that pydantic invents (here a missing key) resolve to the closest parent.
    assert at.locate(("transitions", 0, "to")) == Position(8, 5)
    assert at.locate(("nowhere", 3)) == Position(1, 1)


def test_problem_carries_the_file_and_the_position() -> None:
    _, at = load_with_positions(DOC, "f.yaml")
    problem = at.problem(("transitions", 0, "from", 1), "unknown state 'waiting'", "fix it")
    assert str(problem) == "f.yaml:9:21: unknown state 'waiting'\n    hint: fix it"


def test_an_empty_document() -> None:
    data, at = load_with_positions("", "f.yaml")
    assert data is None
    assert at.values == {}


def test_duplicate_keys_are_refused_with_both_lines() -> None:
    text = "a: 1\nb:\n  x: 1\n  y: 2\n  x: 3\na: 4\n"
    with pytest.raises(YamlSyntaxError) as info:
        load_with_positions(text, "f.yaml")
    assert [(p.line, p.column, p.message) for p in info.value.problems] == [
        (5, 3, "duplicate key 'x' (first defined at line 3)"),
        (6, 1, "duplicate key 'a' (first defined at line 1)"),
    ]
    assert all("rename or merge" in p.hint for p in info.value.problems)


def test_a_syntax_error_is_located() -> None:
    with pytest.raises(YamlSyntaxError) as info:
        load_with_positions("a: [1, 2\nb: 3\n", "f.yaml")
    (problem,) = info.value.problems
    assert problem.file == "f.yaml"
    assert problem.message.startswith("YAML syntax error: ")
    assert (problem.line, problem.column) == (2, 2)


def test_a_tab_is_a_syntax_error() -> None:
    with pytest.raises(YamlSyntaxError) as info:
        load_with_positions("a:\n\tb: 1\n", "f.yaml")
    assert info.value.problems[0].line == 2
    assert "'\\t'" in info.value.problems[0].message


@pytest.mark.parametrize("key", ["[a, b]", "{a: 1}", "null", "1.5"])
def test_keys_must_be_plain_words(key: str) -> None:
    with pytest.raises(YamlSyntaxError) as info:
        load_with_positions(f"ok: 1\n? {key}\n: 2\n", "f.yaml")
    (problem,) = info.value.problems
    assert (problem.line, problem.column, problem.message) == (2, 3, "keys must be plain words")


def test_on_as_a_key_stays_the_word_the_author_wrote() -> None:
    # YAML 1.1 reads a bare 'on' (also yes/no/off) as a boolean; as a key it is always
    # meant as the word, so a typo like 'on: paid' gets an "unknown key 'on'" error.
    data, at = load_with_positions("event: go\non: paid\n", "f.yaml")
    assert data == {"event": "go", "on": "paid"}
    assert at.keys[("on",)] == Position(2, 1)


def test_anchors_and_aliases_are_expanded_with_positions_of_the_anchor() -> None:
    text = "a: &t {after: 5m}\nb: *t\n"
    data, at = load_with_positions(text, "f.yaml")
    assert data == {"a": {"after": "5m"}, "b": {"after": "5m"}}
    assert at.values[("b", "after")] == Position(1, 15)


def test_keys_one_and_true_do_not_crash() -> None:
    # Either answer is fine (two keys, or a located duplicate); an escaping KeyError is not.
    try:
        load_with_positions("1: a\ntrue: b\n", "f.yaml")
        lines = []
    except YamlSyntaxError as exc:
        lines = [problem.line for problem in exc.problems]
    assert lines in ([], [2])


def test_a_merge_key_may_be_overridden() -> None:
    data, _ = load_with_positions("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\n", "f.yaml")
    assert data["c"] == {"x": 1, "y": 3}


def test_a_recursive_alias_is_a_located_problem() -> None:
    text = "flowengine: 1\nname: t\nversion: 1\nstates: &s\n  a: *s\n"
    with pytest.raises(FlowValidationError) as info:
        load_flow("inline.yaml", text=text)
    assert info.value.first.line == 5
