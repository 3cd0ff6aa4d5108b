"""The ``flowengine`` command: validate, draw, explore and step flows from a shell.

Every subcommand reports mistakes as ``file:line:column: message`` plus a hint and exits
1; nothing prints a traceback at a user. The work itself lives in the library
(:mod:`flowengine.spec`, :mod:`flowengine.diagrams`, :mod:`flowengine.paths`, …): this
module only parses arguments and formats results.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

from .errors import FlowEngineError, FlowValidationError
from .spec import FlowSpec, load_flow, load_flows

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
    except OSError as exc:  # a file named on the command line: the user's to fix
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
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
    diagram.add_argument(
        "flow", type=Path, metavar="FLOW", nargs="?", help="flow file (optional with --session)"
    )
    diagram.add_argument("--session", metavar="ID", help="highlight this stored session's path")
    diagram.add_argument("--store", help="store URL holding --session, or the traffic for --heat")
    diagram.add_argument(
        "--heat", action="store_true", help="label arrows and states with the traffic in --store"
    )
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
    simulate.add_argument(
        "--store", default="memory://", help="store URL to keep the session in (default: memory)"
    )
    simulate.set_defaults(run=_simulate)

    sessions = commands.add_parser("sessions", help="inspect stored sessions")
    sessions_commands = sessions.add_subparsers(required=True, metavar="ACTION")
    show = sessions_commands.add_parser("show", help="a session and its history")
    show.add_argument("session_id", metavar="ID")
    show.add_argument("--store", required=True, help="store URL, e.g. sqlite:///x.db")
    show.add_argument("--json", action="store_true", help="print the full session as JSON")
    show.set_defaults(run=_sessions_show)

    review = sessions_commands.add_parser(
        "review",
        help="sessions waiting for a person (status requires_review), oldest first, then "
        "effects and timers the workers parked",
    )
    review.add_argument("--store", required=True, help="store URL")
    review.add_argument("--flows", type=Path, default=Path("flows"), help="flows directory")
    review.set_defaults(run=_sessions_review)

    override = sessions_commands.add_parser(
        "override", help="apply an allowed event by hand, recorded with actor and reason"
    )
    override.add_argument("session_id", metavar="ID")
    override.add_argument("event", metavar="EVENT", nargs="?", help="omit to list the choices")
    _decision_arguments(override)
    override.set_defaults(run=_sessions_override)

    effects = commands.add_parser("effects", help="effects the workers parked for a person")
    effects_commands = effects.add_subparsers(required=True, metavar="ACTION")
    retry = effects_commands.add_parser(
        "retry",
        help="put a parked effect back in the queue (its adapter is asked status_of first)",
    )
    retry.add_argument("key", metavar="KEY", help="as listed by 'sessions review'")
    _decision_arguments(retry)
    retry.set_defaults(run=_effects_retry)

    timers = commands.add_parser("timers", help="timers that failed to fire")
    timers_commands = timers.add_subparsers(required=True, metavar="ACTION")
    refire = timers_commands.add_parser(
        "retry", help="let a failed timer fire again (once its cause is fixed)"
    )
    refire.add_argument("session_id", metavar="ID")
    refire.add_argument(
        "timer_id", metavar="TIMER", type=int, help="as listed by 'sessions review'"
    )
    _decision_arguments(refire)
    refire.set_defaults(run=_timers_retry)

    from .testgen import add_command as add_testgen

    add_testgen(commands)

    reconcile = commands.add_parser(
        "reconcile", help="recompute every session's amounts from its log; exit 1 on a mismatch"
    )
    reconcile.add_argument("--store", required=True, help="store URL")
    reconcile.add_argument("--flows", type=Path, default=Path("flows"), help="flows directory")
    reconcile.set_defaults(run=_reconcile)

    from . import flowdiff, replay

    replay.add_commands(flowdiff.add_command(commands))
    return parser


def _validate(args: argparse.Namespace) -> int:
    for spec in load_flows(args.flows):
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
    from .traffic import traffic_from_store

    highlight = [state for state in args.highlight.split(",") if state]
    migrations: list[tuple[str, str]] = []
    if args.session:
        if highlight:
            raise FlowEngineError("--session highlights the session's own path: drop --highlight")
        spec, highlight, migrations = _session_path(args)
    elif args.flow is None:
        raise FlowEngineError("name a FLOW file, or --session ID with --store URL")
    else:
        spec = load_flow(args.flow)
    fmt = args.format or (args.output.suffix.lstrip(".") if args.output else "dot")
    if fmt not in ("dot", "svg", "png"):
        raise FlowEngineError(f"unknown diagram format '{fmt}'; use dot, svg or png")
    unknown = [state for state in highlight if state not in spec.states]
    if unknown:
        raise FlowEngineError(f"--highlight names unknown states: {', '.join(unknown)}")
    traffic = None
    if args.heat:
        if not args.store:
            raise FlowEngineError("--heat needs --store URL")
        from .store import open_store

        store = open_store(args.store, existing=True)
        try:
            traffic = traffic_from_store(store, spec.name)
        finally:
            store.close()
    data = render(
        spec,
        cast(DiagramFormat, fmt),
        highlight=highlight,
        traffic=traffic,
        migrations=migrations,
    )
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_bytes(data)
        print(f"wrote {args.output}")
    else:
        sys.stdout.buffer.write(data)
    return 0


def _decision_arguments(parser: argparse.ArgumentParser) -> None:
    """What every decision by hand takes: who and why (for the log), and where."""
    parser.add_argument("--reason", default="", help="why (recorded in the log)")
    parser.add_argument("--actor", default=os.environ.get("USER", ""), help="who (default $USER)")
    parser.add_argument("--store", required=True, help="store URL")
    parser.add_argument("--flows", type=Path, default=Path("flows"), help="flows directory")


@contextmanager
def _opened_engine(args: argparse.Namespace) -> Iterator[Any]:
    """The engine for ``--flows`` and ``--store``, its store closed afterwards."""
    engine = _engine_for(args)
    try:
        yield engine
    finally:
        engine.store.close()


def _engine_for(args: argparse.Namespace) -> Any:
    from .engine import Engine
    from .flows import FlowRegistry
    from .store import open_store

    store = open_store(args.store, existing=True)  # decisions act on sessions that exist
    return Engine(FlowRegistry.from_directory(args.flows), store)


def _sessions_review(args: argparse.Namespace) -> int:
    with _opened_engine(args) as engine:
        waiting = engine.review_queue()
        parked = engine.parked_work()
    for record in waiting:
        print(
            f"{record.session_id}  {record.flow_name} v{record.flow_version}  "
            f"{record.state}  since {_when(record.updated_at)}"
        )
    print(f"{len(waiting)} session{'s' if len(waiting) != 1 else ''} waiting for review")
    for effect in parked.effects:
        print(
            f"parked effect {effect.key}  after {effect.attempts} attempt(s) since "
            f"{_when(effect.available_at)}: {effect.last_error or 'no detail'}  "
            "(flowengine effects retry KEY, or settle the session with an override)"
        )
    for timer in parked.timers:
        print(
            f"failed timer {timer.timer_id} ({timer.event}) of {timer.session_id} in "
            f"{timer.state}, due {_when(timer.due_at)}  (flowengine timers retry ID TIMER)"
        )
    return 0


def _effects_retry(args: argparse.Namespace) -> int:
    with _opened_engine(args) as engine:
        retried = engine.retry_effect(args.key, reason=args.reason, actor=args.actor)
    print(f"effect {retried.key} queued again (by {args.actor})")
    return 0


def _timers_retry(args: argparse.Namespace) -> int:
    with _opened_engine(args) as engine:
        engine.retry_timer(args.session_id, args.timer_id, reason=args.reason, actor=args.actor)
    print(f"timer {args.timer_id} of {args.session_id} will fire again (by {args.actor})")
    return 0


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def _sessions_override(args: argparse.Namespace) -> int:
    with _opened_engine(args) as engine:
        if args.event is None:
            for choice in engine.allowed_events(args.session_id):
                guard = f" [{choice.guard}]" if choice.guard else ""
                mark = "" if choice.enabled else "   (guard false now)"
                print(f"{choice.event:<24} → {choice.target}{guard}{mark}")
            return 0
        result = engine.override(args.session_id, args.event, reason=args.reason, actor=args.actor)
    print(f"session {args.session_id}: {result.event.source} → {result.state} (by {args.actor})")
    return 0


def _reconcile(args: argparse.Namespace) -> int:
    from .flows import FlowRegistry
    from .reconcile import reconcile
    from .store import open_store

    store = open_store(args.store, existing=True)
    try:
        with store.transaction() as tx:  # every flow the store holds, whatever flows/ has
            names = sorted({*tx.flow_names(), *FlowRegistry.from_directory(args.flows).names()})
        result = reconcile(store, names)
    finally:
        store.close()
    for mismatch in result.mismatches:
        print(mismatch)
    print(f"{result.sessions} sessions reconciled, {len(result.mismatches)} mismatches")
    return 1 if result.mismatches else 0


def _session_path(
    args: argparse.Namespace,
) -> tuple[FlowSpec, list[str], list[tuple[str, str]]]:
    """The flow version a stored session runs, and the states it went through."""
    from .engine import Engine
    from .flows import FlowRegistry
    from .store import open_store

    if not args.store:
        raise FlowEngineError("--session needs --store URL")
    engine = Engine(FlowRegistry(), open_store(args.store, existing=True))
    try:
        record = engine.record(args.session)
        history = engine.history(args.session)
        with engine.store.transaction() as tx:
            version = tx.get_flow_version(record.flow_hash)
    finally:
        engine.store.close()
    if args.flow is not None:
        spec = load_flow(args.flow)
    elif version is not None and version.text:
        spec = load_flow(
            f"<stored flow {record.flow_name} v{record.flow_version}>", text=version.text
        )
    else:
        raise FlowEngineError(
            f"the store has no text for flow {record.flow_name}; name the FLOW file"
        )
    from .traffic import session_path

    states, migrations = session_path(history, spec)
    return spec, states, migrations


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
    from .engine import Engine
    from .flows import FlowRegistry

    spec = load_flow(args.flow)
    try:
        overrides: dict[str, Any] = json.loads(args.session)
    except json.JSONDecodeError as exc:
        raise FlowEngineError(f"--session is not valid JSON: {exc}") from None
    if not isinstance(overrides, dict):
        raise FlowEngineError("--session must be a JSON object of create-session fields")
    engine = Engine(FlowRegistry([spec]), args.store)
    try:
        session = engine.create_session(_merge(_demo_request(spec.name), overrides))
        sid = session.session_id
        print(f"session {sid} in {args.store}")
        created = engine.history(sid)[0]
        print(f"{'start':<18} → {created.target}{_describe(created.requests)}")
        data = engine.record(sid).data  # its destination (what a payment brings) stays
        for event in (e.strip() for e in args.events.split(",") if e.strip()):
            step = engine.send(sid, event, _simulated_payload(event, data))
            print(f"{event:<18} {step.event.source} → {step.state}{_describe(step.event.requests)}")
        record = engine.record(sid)
    finally:
        engine.store.close()
    final = " (final)" if spec.states[record.state].final else ""
    print(f"ends in {record.state}{final}, status '{record.status}'")
    return 0


def _simulated_payload(event: str, session: Mapping[str, Any]) -> dict[str, Any]:
    """What a simulated event carries: a payment brings the session's amount (one whole
    token when the payer chooses it), since a payment of nothing is refused."""
    if event != "payment_detected":
        return {}
    from . import amounts

    expected = amounts.expected_units(session)
    return {"units": expected or 10 ** int(session["destination"].get("decimals", 0))}


def _demo_request(flow: str) -> dict[str, Any]:
    """A valid create-session body for trying a flow from the shell (Base USDC)."""
    return {
        "destination": {
            "type": "evm",
            "chainId": 8453,
            "address": "0x000000000000000000000000000000000000dEaD",
            "tokenAddress": "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
        },
        "display": {"title": "Simulated session", "verb": "Pay"},
        "refundAddress": "0x000000000000000000000000000000000000dEaD",
        "flow": flow,
    }


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _sessions_show(args: argparse.Namespace) -> int:
    from .engine import Engine
    from .flows import FlowRegistry
    from .store import open_store

    engine = Engine(FlowRegistry(), open_store(args.store, existing=True))
    try:
        session = engine.get(args.session_id)
        history = engine.history(args.session_id)
    finally:
        engine.store.close()
    if args.json:
        print(json.dumps(session.full(), indent=2))
        return 0
    print(
        f"session {session.session_id}  flow {session.flow.name} v{session.flow.version}  "
        f"state {session.state}  status {session.status}"
    )
    print(
        f"amounts: received {session.amounts.received}, delivered {session.amounts.delivered}, "
        f"refunded {session.amounts.refunded} {session.destination.token_symbol}"
    )
    print(f"{'seq':>4}  {'at (UTC)':<19}  {'event':<22} {'from':<18} {'to':<18} requests")
    for event in history:
        at = datetime.fromtimestamp(event.created_at / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
        requests = _describe(event.requests).replace("   requests: ", "")
        print(
            f"{event.seq:>4}  {at:<19}  {event.event:<22} {event.source or '-':<18} "
            f"{event.target:<18} {requests}"
        )
    return 0


def _describe(requests: Sequence[Mapping[str, Any]]) -> str:
    """The requests logged with an event, as text (effects, timers, webhooks)."""
    parts = []
    for request in requests:
        if request["kind"] == "effect":
            parts.append(f"effect {request['effect']}")
        elif request["kind"] == "timer":
            seconds = request.get("after_seconds")
            parts.append(
                f"timer {request['event']} {f'after {seconds}s' if seconds else 'at expiry'}"
            )
        else:
            parts.append(f"webhook {request['type']}")
    return ("   requests: " + "; ".join(parts)) if parts else ""


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
