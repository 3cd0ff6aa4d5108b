"""The ``flowengine`` command: validate, draw, explore and step flows from a shell.

Every subcommand reports mistakes as ``file:line:column: message`` plus a hint and exits
1; nothing prints a traceback at a user. The work itself lives in the library
(:mod:`flowengine.spec`, :mod:`flowengine.diagrams`, :mod:`flowengine.paths`, …): this
module only parses arguments and formats results.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, cast

from .compiler import Request, compile_flow
from .errors import FlowEngineError, FlowValidationError, Problem
from .spec import FlowSpec, load_flow

DiagramFormat = Literal["dot", "svg", "png"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.run(args)
    except FlowValidationError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    except FlowEngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowengine", description="Declarative payment-flow engine: flows in YAML."
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    validate = commands.add_parser("validate", help="check flow files; exit 1 on any problem")
    validate.add_argument("flows", nargs="+", type=Path, metavar="FLOW")
    validate.set_defaults(run=_validate)

    schema = commands.add_parser("schema", help="print the flow language's JSON Schema")
    schema.set_defaults(run=_schema)

    diagram = commands.add_parser("diagram", help="draw a flow with Graphviz")
    diagram.add_argument("flow", type=Path, metavar="FLOW")
    diagram.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    diagram.add_argument("--format", choices=("dot", "svg", "png"), default=None)
    diagram.add_argument(
        "--highlight", default="", help="comma-separated states of a path to colour"
    )
    diagram.set_defaults(run=_diagram)

    paths = commands.add_parser("paths", help="every path from the initial to a final state")
    paths.add_argument("flow", type=Path, metavar="FLOW")
    paths.add_argument("--json", action="store_true", help="print JSON instead of text")
    paths.set_defaults(run=_paths)

    simulate = commands.add_parser(
        "simulate", help="step a flow through events and print what each step requests"
    )
    simulate.add_argument("flow", type=Path, metavar="FLOW")
    simulate.add_argument("--events", required=True, help="comma-separated events, in order")
    simulate.add_argument(
        "--session",
        default="{}",
        help="the session's facts as JSON, for guards (e.g. '{\"destination\": "
        '{"amountUnits": "25"}}\')',
    )
    simulate.set_defaults(run=_simulate)
    return parser


def _load_all(paths: Sequence[Path]) -> list[FlowSpec]:
    """Load every flow, collecting every file's problems before failing."""
    specs: list[FlowSpec] = []
    problems: list[Problem] = []
    for path in paths:
        try:
            specs.append(load_flow(path))
        except FlowValidationError as exc:
            problems.extend(exc.problems)
    if problems:
        raise FlowValidationError(problems)
    return specs


def _validate(args: argparse.Namespace) -> int:
    for spec in _load_all(args.flows):
        print(
            f"ok  {spec.source.file if spec.source else spec.name}: flow '{spec.name}' "
            f"version {spec.version}, {len(spec.states)} states, {len(spec.edges())} edges"
        )
    return 0


def _schema(_: argparse.Namespace) -> int:
    schema = FlowSpec.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "flowengine flow (flowengine: 1)"
    print(json.dumps(schema, indent=2))
    return 0


def _diagram(args: argparse.Namespace) -> int:
    from .diagrams import render

    spec = load_flow(args.flow)
    fmt = args.format or (args.output.suffix.lstrip(".") if args.output else "dot")
    if fmt not in ("dot", "svg", "png"):
        raise FlowEngineError(f"unknown diagram format '{fmt}'; use dot, svg or png")
    highlight = [state for state in args.highlight.split(",") if state]
    unknown = [state for state in highlight if state not in spec.states]
    if unknown:
        raise FlowEngineError(f"--highlight names unknown states: {', '.join(unknown)}")
    data = render(spec, cast(DiagramFormat, fmt), highlight=highlight)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_bytes(data)
        print(f"wrote {args.output}")
    else:
        sys.stdout.buffer.write(data)
    return 0


def _paths(args: argparse.Namespace) -> int:
    from .paths import all_paths, format_paths

    spec = load_flow(args.flow)
    found = all_paths(spec)
    if args.json:
        print(json.dumps([path.to_dict() for path in found], indent=2))
    else:
        print(format_paths(found))
    return 0


def _simulate(args: argparse.Namespace) -> int:
    spec = load_flow(args.flow)
    flow = compile_flow(spec)
    try:
        session: dict[str, Any] = json.loads(args.session)
    except json.JSONDecodeError as exc:
        raise FlowEngineError(f"--session is not valid JSON: {exc}") from None
    step = flow.start(session)
    print(f"start            → {step.target}{_describe(step.requests)}")
    state = step.target
    for event in (e.strip() for e in args.events.split(",") if e.strip()):
        step = flow.send(state, event, session=session)
        print(f"{event:<16} {state} → {step.target}{_describe(step.requests)}")
        state = step.target
    final = " (final)" if flow.is_final(state) else ""
    print(f"ends in {state}{final}, status '{flow.status_of(state)}'")
    return 0


def _describe(requests: Sequence[Request]) -> str:
    parts = []
    for request in requests:
        if request.kind == "effect":
            parts.append(f"effect {request.effect}")
        elif request.kind == "timer":
            when = f"after {request.after_seconds}s" if request.after_seconds else "at expiry"
            parts.append(f"timer {request.event} {when}")
        else:
            parts.append(f"webhook {request.type}")
    return ("   requests: " + "; ".join(parts)) if parts else ""


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
