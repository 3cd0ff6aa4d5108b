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


def load_with_positions(text: str, file: str) -> tuple[Any, Positions]:
    """Parse ``text`` into plain data plus the position of every path in it."""
    positions = Positions(file)
    problems: list[Problem] = []
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, positions

        def walk(n: yaml.Node, path: Path) -> Any:
            positions.values[path] = _mark(n)
            if isinstance(n, yaml.MappingNode):
                loader.flatten_mapping(n)
                result: dict[Any, Any] = {}
                for key_node, value_node in n.value:
                    key = loader.construct_object(key_node, deep=True)
                    if not isinstance(key, str | int):
                        where = _mark(key_node)
                        problems.append(
                            Problem(file, where.line, where.column, "keys must be plain words")
                        )
                        continue
                    child: Path = (*path, str(key) if isinstance(key, bool) else key)
                    if key in result:
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
                    positions.keys[child] = _mark(key_node)
                    result[key] = walk(value_node, child)
                return result
            if isinstance(n, yaml.SequenceNode):
                return [walk(item, (*path, i)) for i, item in enumerate(n.value)]
            return loader.construct_object(n, deep=True)

        data = walk(node, ())
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
    finally:
        loader.dispose()
    if problems:
        raise YamlSyntaxError(problems)
    return data, positions
