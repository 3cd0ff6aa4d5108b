"""Load YAML while remembering where every key and value came from.

pydantic validates plain Python data and reports errors by path
(``("states", "paid", "to")``); PyYAML knows line and column only while it is still
building nodes. This module walks the composed node tree once and produces both the
data and a map from each path to its position, so that every error flowengine reports
about a flow file can name ``file:line:column``. It also rejects duplicate keys, which
PyYAML silently lets the last one win.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from ..errors import Problem

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Position:
    line: int
    column: int


@dataclass
class Positions:
    """Where each path of a loaded document starts (1-based line and column)."""

    file: str
    values: dict[Path, Position] = field(default_factory=dict)
    keys: dict[Path, Position] = field(default_factory=dict)

    def locate(self, path: Path, *, key: bool = False) -> Position:
        """The position of ``path``, or of its nearest ancestor that has one."""
        probe = tuple(path)
        while True:
            table = self.keys if key else self.values
            if probe in table:
                return table[probe]
            if probe in self.values:
                return self.values[probe]
            if not probe:
                return Position(1, 1)
            probe = probe[:-1]

    def problem(self, path: Path, message: str, hint: str = "", *, key: bool = False) -> Problem:
        where = self.locate(path, key=key)
        return Problem(self.file, where.line, where.column, message, hint)


class YamlSyntaxError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


def _mark(node: yaml.Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


#: A flow is a few hundred nodes; anything far larger is an alias bomb, not a flow.
MAX_NODES = 100_000


def load_with_positions(text: str, file: str) -> tuple[Any, Positions]:
    """Parse ``text`` into plain data plus the position of every path in it."""
    positions = Positions(file)
    problems: list[Problem] = []
    loader = yaml.SafeLoader(text)
    walked = 0

    def walk(n: yaml.Node, path: Path, active: frozenset[int]) -> Any:
        nonlocal walked
        walked += 1
        if walked > MAX_NODES or id(n) in active:
            raise _TooDeep(n)
        positions.values.setdefault(path, _mark(n))
        if isinstance(n, yaml.MappingNode):
            own = sum(1 for key_node, _ in n.value if key_node.tag != "tag:yaml.org,2002:merge")
            loader.flatten_mapping(n)
            merged = len(n.value) - own  # merged (<<) pairs come first; explicit keys win
            result: dict[Any, Any] = {}
            for index, (key_node, value_node) in enumerate(n.value):
                key = _key(loader, key_node)
                if key is None:
                    where = _mark(key_node)
                    problems.append(
                        Problem(file, where.line, where.column, "keys must be plain words")
                    )
                    continue
                child: Path = (*path, key)
                if key in result and index >= merged and child in positions.keys:
                    where = _mark(key_node)
                    first = positions.keys[child]
                    problems.append(
                        Problem(
                            file,
                            where.line,
                            where.column,
                            f"duplicate key '{key}' (first defined at line {first.line})",
                            "each name may appear once in a mapping; rename or merge them",
                        )
                    )
                    continue
                if index >= merged:
                    positions.keys[child] = _mark(key_node)
                if id(value_node) in active or value_node is n:
                    raise _TooDeep(key_node)  # a recursive alias: name where it recurses
                result[key] = walk(value_node, child, active | {id(n)})
            return result
        if isinstance(n, yaml.SequenceNode):
            return [walk(item, (*path, i), active | {id(n)}) for i, item in enumerate(n.value)]
        return loader.construct_object(n, deep=True)

    try:
        node = loader.get_single_node()
        if node is None:
            return None, positions
        data = walk(node, (), frozenset())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problems.append(
            Problem(
                file,
                line,
                column,
                f"YAML syntax error: {exc.problem or exc}",
                "check the indentation and quoting on this line and the one above",
            )
        )
        raise YamlSyntaxError(problems) from None
    except _TooDeep as exc:
        where = _mark(exc.node)
        problems.append(
            Problem(
                file,
                where.line,
                where.column,
                "this alias refers to itself, or expands to too much data",
                "use anchors (&) and aliases (*) only for small, non-recursive pieces",
            )
        )
        raise YamlSyntaxError(problems) from None
    finally:
        loader.dispose()
    if problems:
        raise YamlSyntaxError(problems)
    return data, positions


class _TooDeep(Exception):
    def __init__(self, node: yaml.Node) -> None:
        self.node = node


def _key(loader: yaml.SafeLoader, node: yaml.Node) -> str | int | None:
    """A mapping key as the flow author wrote it.

    YAML 1.1 reads a bare ``on``, ``yes`` or ``off`` as a boolean; as a key it is always
    meant as the word (``on: paid`` is a typo of a field, not ``True: paid``).
    """
    if not isinstance(node, yaml.ScalarNode):
        return None
    value = loader.construct_object(node, deep=True)
    if isinstance(value, bool):
        return str(node.value)
    if isinstance(value, str | int):
        return value
    return None
