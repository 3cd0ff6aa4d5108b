"""Turn a flow file into a checked :class:`FlowSpec`, or into a list of located problems.

The pipeline is: YAML text → plain data with positions (:mod:`.yamlpos`) → pydantic
models (shape) → static checks (meaning). Every failure on the way becomes a
:class:`Problem` naming file, line and column, and all of them are raised together.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from ..errors import FlowValidationError, Problem
from ..registry import Registry, default_registry
from .checks import check_flow, did_you_mean
from .models import FlowSource, FlowSpec, StateSpec, TimerSpec, TransitionSpec
from .yamlpos import Positions, YamlSyntaxError, load_with_positions


def _keys(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def _keys_at(path: tuple[str | int, ...]) -> list[str]:
    """The keys allowed in the mapping at ``path``, for a precise "did you mean"."""
    if len(path) == 1:
        return _keys(FlowSpec)
    if path[0] == "states":
        return _keys(TimerSpec) if "timers" in path else _keys(StateSpec)
    if path[0] == "transitions":
        return _keys(TransitionSpec)
    return [
        key for model in (FlowSpec, StateSpec, TransitionSpec, TimerSpec) for key in _keys(model)
    ]


def load_flow(
    source: str | Path, *, registry: Registry | None = None, text: str | None = None
) -> FlowSpec:
    """Load and check one flow file (or ``text``, reported under the name ``source``).

    Raises :class:`~flowengine.errors.FlowValidationError` listing every problem found.
    """
    file = str(source)
    if text is None:
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise FlowValidationError(
                [Problem(file, 1, 1, f"cannot read flow file: {exc.strerror}", "check the path")]
            ) from None
    try:
        data, positions = load_with_positions(text, file)
    except YamlSyntaxError as exc:
        raise FlowValidationError(exc.problems) from None
    if not isinstance(data, dict):
        raise FlowValidationError(
            [Problem(file, 1, 1, "a flow file must be a mapping", "start with 'flowengine: 1'")]
        )
    try:
        spec = FlowSpec.model_validate(data)
    except ValidationError as exc:
        raise FlowValidationError(_shape_problems(exc.errors(), positions, data)) from None
    problems = check_flow(spec, positions, registry or default_registry())
    if problems:
        raise FlowValidationError(problems)
    spec._source = FlowSource(file, text, positions)
    return spec


def load_flows(paths: Iterable[str | Path], *, registry: Registry | None = None) -> list[FlowSpec]:
    """Load several flows, reporting every file's problems together before failing."""
    specs: list[FlowSpec] = []
    problems: list[Problem] = []
    for path in paths:
        try:
            specs.append(load_flow(path, registry=registry))
        except FlowValidationError as exc:
            problems.extend(exc.problems)
    if problems:
        raise FlowValidationError(problems)
    return specs


def _shape_problems(errors: list[ErrorDetails], at: Positions, data: Any) -> list[Problem]:
    """One problem per mistake (pydantic reports a bad ``upgrade`` once per union arm)."""
    problems: list[Problem] = []
    upgrade = data.get("upgrade")
    if isinstance(upgrade, str) and upgrade != "pinned":
        problems.append(
            at.problem(
                ("upgrade",),
                f"unknown upgrade policy '{upgrade}'",
                did_you_mean(upgrade, ["pinned"], "policies")
                + " (or a mapping {from: <versions>, migrate: {old_state: new_state}})",
            )
        )
        errors = [e for e in errors if not e["loc"] or e["loc"][0] != "upgrade"]
    problems.extend(_shape_problem(error, at, data) for error in errors)
    return problems


def _shape_problem(error: ErrorDetails, at: Positions, data: Any) -> Problem:
    path = tuple(
        part
        for part in error["loc"]
        if isinstance(part, int) or (isinstance(part, str) and part != "UpgradeSpec")
    )
    kind = error["type"]
    field = str(path[-1]) if path else ""
    if kind == "missing":
        return at.problem(
            path[:-1],
            f"missing required key '{field}'",
            f"add '{field}: …' here",
            key=True,
        )
    if kind == "extra_forbidden":
        return at.problem(
            path,
            f"unknown key '{field}'",
            did_you_mean(field, _keys_at(path), "keys"),
            key=True,
        )
    if kind == "string_pattern_mismatch":
        return at.problem(
            path,
            f"'{error['input']}' is not a valid name here",
            "names are lower-case letters, digits and underscores, starting with a letter "
            "(events may have dots: 'evm.deliver.done')",
        )
    if kind == "literal_error" and path == ("flowengine",):
        return at.problem(path, "unsupported flow-language version", "write 'flowengine: 1'")
    if (
        kind == "literal_error"
        and path == ("variance", "underpaid")
        and error["input"] == "refund_difference"
    ):
        return at.problem(
            path,
            "an underpayment has no difference to refund",
            "nothing beyond amountUnits arrived; give it all back with 'refund_all', "
            "wait for the rest with 'wait_until_expiry', or send it to 'review'",
        )
    message = error["msg"].removeprefix("Value error, ")
    return at.problem(path, message, _hint_for(kind))


def _hint_for(kind: str) -> str:
    return {
        "string_type": "write this as text",
        "list_type": "write a list, e.g. [a, b]",
        "dict_type": "write a mapping of key: value",
        "bool_type": "write true or false",
        "too_short": "this may not be empty",
    }.get(kind, "")
