"""Replay stored sessions through a new flow version before it goes live.

A flow's transitions are pure functions of (state, event, payload, session), and every
side effect is an outbox row, so a new version can be tried on real traffic without
performing anything: each live session's logged events are fed to the new version's
compiled machine (with its ``upgrade.migrate`` map translating old state names), and
the states it reaches and the effects it would request are compared with what was
recorded. The first difference in each session is reported; none means the change is
safe for every session it will meet (it may still add new states or paths).

``flowengine flows check NEW --store URL --replay`` prints the report and exits 1 on a
divergence; ``flowengine flows deploy`` registers a version only after it passes.
"""

from __future__ import annotations

import argparse
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import amounts
from .clock import SystemClock
from .compiler import CompiledFlow, EffectRequest, compile_flow
from .errors import FlowEngineError, Problem, TransitionNotAllowed
from .flows import ensure_unchanged_in
from .migration import MIGRATED_EVENT
from .registry import Registry, default_registry
from .spec import FlowSpec, check_upgrade, load_flow
from .store import EventRecord, FlowVersionRecord, SessionRecord, Store, open_store


@dataclass(frozen=True)
class Divergence:
    """Where a session's replay first differs from what was recorded."""

    session_id: str
    seq: int
    event: str
    recorded: str
    replayed: str

    def __str__(self) -> str:
        return (
            f"session {self.session_id}, event #{self.seq} '{self.event}': recorded "
            f"{self.recorded}; {self.replayed} with the new version"
        )


@dataclass
class ReplayReport:
    flow: str
    version: str
    sessions: int = 0
    events: int = 0
    divergences: list[Divergence] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    """Upgrade-map problems found against the stored older versions."""

    @property
    def ok(self) -> bool:
        return not self.divergences and not self.problems

    def format(self) -> str:
        lines = [str(p) for p in self.problems]
        lines += [f"DIVERGES  {d}" for d in self.divergences]
        verdict = "ok" if self.ok else "FAILED"
        lines.append(
            f"{verdict}: flow {self.flow} version {self.version} replayed {self.sessions} live "
            f"sessions ({self.events} events): {len(self.divergences)} diverge"
        )
        return "\n".join(lines)


def replay_check(
    store: Store,
    new: FlowSpec,
    *,
    sample: int | None = None,
    registry: Registry | None = None,
) -> ReplayReport:
    """Replay the live sessions of ``new.name`` in ``store`` through ``new``."""
    registry = registry or default_registry()
    target = compile_flow(new, registry)
    report = ReplayReport(new.name, new.version)
    with store.transaction() as tx:
        versions = {v.content_hash: v for v in tx.flow_versions(new.name)}
        sessions = tx.sessions_of_flow(new.name)
        logs: dict[str, list[EventRecord]] = defaultdict(list)
        for event in tx.events_of_flow(new.name):
            logs[event.session_id].append(event)
    own = _VersionCache(versions, registry)
    for old in own.specs():
        report.problems.extend(check_upgrade(new, old))
    live = [s for s in sessions if not own.flow(s.flow_hash).is_final(s.state)]
    if sample is not None and sample < len(live):
        live = random.Random(0).sample(live, sample)
    for record in live:
        log = logs.get(record.session_id, [])
        report.sessions += 1
        report.events += len(log)
        divergence = _replay_one(record, log, target, _names(new, record))
        if divergence is not None:
            report.divergences.append(divergence)
    return report


def _names(new: FlowSpec, record: SessionRecord) -> Mapping[str, str]:
    """How the session's recorded state names read in the new version."""
    upgrade = new.upgrade
    if record.flow_hash == new.content_hash or isinstance(upgrade, str):
        return {}
    return upgrade.migrate if upgrade.covers(record.flow_version) else {}


def _replay_one(
    record: SessionRecord,
    log: Sequence[EventRecord],
    flow: CompiledFlow,
    names: Mapping[str, str],
) -> Divergence | None:
    # Guards read the amounts as they were when each event arrived, not as they are
    # now: they are folded from the log as it is replayed (the rule reconcile uses:
    # every row but a deferral counts). A session moved to another version is replayed
    # from its last move, in the state it moved to; rows before it name the states of
    # the version it left.
    moved = max((i for i, row in enumerate(log) if row.event == MIGRATED_EVENT), default=-1)
    projection = amounts.empty()
    state = ""
    for index, row in enumerate(log):
        session: Mapping[str, Any] = {**record.data, "amounts": projection}
        if not row.meta.get("deferred"):
            projection = amounts.apply(projection, row.event, row.payload)
        if index == moved:
            state = names.get(row.target, row.target)
        if index <= moved or row.event == MIGRATED_EVENT or row.meta.get("applied") is False:
            continue  # bookkeeping rows: not transitions the flow took
        expected_state = names.get(row.target, row.target)
        expected_effects = [r["effect"] for r in row.requests if r.get("kind") == "effect"]
        try:
            step = (
                flow.start(session)
                if row.seq == 1
                else flow.send(state, row.event, row.payload, session=session)
            )
        except TransitionNotAllowed:
            return Divergence(
                record.session_id,
                row.seq,
                row.event,
                _describe(row.source, expected_state, expected_effects),
                f"refused in '{state}'",
            )
        except FlowEngineError as exc:
            return Divergence(
                record.session_id,
                row.seq,
                row.event,
                _describe(row.source, expected_state, expected_effects),
                f"cannot replay ({exc})",
            )
        effects = [r.effect for r in step.requests if isinstance(r, EffectRequest)]
        if step.target != expected_state or effects != expected_effects:
            return Divergence(
                record.session_id,
                row.seq,
                row.event,
                _describe(row.source, expected_state, expected_effects),
                "would go " + _describe(state, step.target, effects),
            )
        state = step.target
    return None


def _describe(source: str, target: str, effects: Sequence[str]) -> str:
    text = f"{source or 'start'} → {target}"
    return text + (f" requesting {', '.join(effects)}" if effects else " requesting nothing")


class _VersionCache:
    """The stored versions of one flow, compiled on first use."""

    def __init__(self, versions: Mapping[str, FlowVersionRecord], registry: Registry) -> None:
        self._versions = versions
        self._registry = registry
        self._compiled: dict[str, CompiledFlow] = {}

    def flow(self, content_hash: str) -> CompiledFlow:
        compiled = self._compiled.get(content_hash)
        if compiled is None:
            stored = self._versions.get(content_hash)
            if stored is None:
                raise FlowEngineError(f"the store has no text for flow version {content_hash[:12]}")
            spec = load_flow(
                f"<stored {stored.name} v{stored.version}>",
                text=stored.text,
                registry=self._registry,
            )
            compiled = compile_flow(spec, self._registry)
            self._compiled[content_hash] = compiled
        return compiled

    def specs(self) -> list[FlowSpec]:
        return [self.flow(h).spec for h in self._versions]


@dataclass(frozen=True)
class Deployment:
    report: ReplayReport
    deployed: bool
    note: str


def deploy(
    store: Store,
    new: FlowSpec,
    *,
    now_ms: int,
    force_reason: str | None = None,
    registry: Registry | None = None,
) -> Deployment:
    """Register ``new`` in ``store`` as deployed, only if its replay check passes.

    ``force_reason`` deploys despite a failed check; the reason and what failed are
    recorded with the version (``deploy_note``), so the override is never silent.
    """
    report = replay_check(store, new, registry=registry)
    if not report.ok and force_reason is None:
        return Deployment(report, False, "")
    note = ""
    if not report.ok:
        note = (
            f"forced: {force_reason} ({len(report.divergences)} diverging sessions, "
            f"{len(report.problems)} map problems)"
        )
    text = new.source.text if new.source else ""
    with store.transaction() as tx:
        ensure_unchanged_in(tx, new)
        tx.save_flow_version(
            FlowVersionRecord(new.name, new.version, new.content_hash, text, now_ms)
        )
        tx.mark_deployed(new.content_hash, now_ms, note)
    return Deployment(report, True, note)


def add_commands(flows_actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``flowengine flows check`` and ``flowengine flows deploy``."""
    check = flows_actions.add_parser(
        "check", help="replay live sessions through a new flow version (no effect is performed)"
    )
    check.add_argument("flow", type=Path, metavar="NEW")
    check.add_argument("--store", required=True, help="store URL holding the live sessions")
    check.add_argument("--replay", action="store_true", help="replay the stored event logs")
    check.add_argument(
        "--sample", type=_at_least_one, help="replay only N random live sessions (N ≥ 1)"
    )
    check.set_defaults(run=_check_command)

    ship = flows_actions.add_parser(
        "deploy", help="register a new flow version, only if its replay check passes"
    )
    ship.add_argument("flow", type=Path, metavar="NEW")
    ship.add_argument("--store", required=True, help="store URL")
    ship.add_argument("--force", action="store_true", help="deploy despite a failed check")
    ship.add_argument("--reason", help="why --force is needed (recorded with the version)")
    ship.set_defaults(run=_deploy_command)


def _at_least_one(text: str) -> int:
    """``--sample``: a check that replays no session would pass having checked nothing."""
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of sessions ≥ 1")
    return int(text)


def _check_command(args: argparse.Namespace) -> int:
    spec = load_flow(args.flow)
    store = open_store(args.store, existing=True)
    try:
        if not args.replay:
            print("nothing to check without --replay (the flow itself is valid)")
            return 0
        report = replay_check(store, spec, sample=args.sample)
    finally:
        store.close()
    print(report.format())
    return 0 if report.ok else 1


def _deploy_command(args: argparse.Namespace) -> int:
    if args.force and not args.reason:
        raise FlowEngineError("--force needs --reason: an override is recorded, never silent")
    spec = load_flow(args.flow)
    store = open_store(args.store, existing=True)  # a mistyped URL must not "deploy"
    try:
        result = deploy(
            store,
            spec,
            now_ms=SystemClock().now_ms(),
            force_reason=args.reason if args.force else None,
        )
    finally:
        store.close()
    print(result.report.format())
    if not result.deployed:
        print(f"NOT deployed: flow {spec.name} version {spec.version} (use --force --reason …)")
        return 1
    suffix = f" ({result.note})" if result.note else ""
    print(f"deployed flow {spec.name} version {spec.version}{suffix}")
    return 0
