"""What changed between two versions of a flow, and which live sessions it touches.

``flowengine flows diff OLD NEW [--store URL] [--json]`` compares two flow files:

* **states** added, removed or changed (status, effect, outcomes, emit, initial, final;
  a label or description change is listed too, but is cosmetic);
* **transitions** added, removed or changed, keyed by ``(event, source)``: one
  ``from: [a, b]`` transition is two keys, and guarded branches of the same event from
  the same source are compared branch by branch (target, guards, unless, effects);
* **timers** added, removed or changed, keyed by ``(state, event)``;
* the **events**, **guards** and **effects** the flow names, added or removed;
* the flow itself: name, description, upgrade map.

The states a change *affects* are those a session sitting there today could behave
differently in: a state removed, a state changed (other than cosmetically, timers
included), and the source of a changed or removed transition. With ``--store`` the
report counts the live sessions of the flow in each of them: sessions not in a final
state of the version *they* run (each version's text is read from the store, once).

The command is a report: it exits 0 whether or not the versions differ.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel

from .errors import FlowEngineError
from .paths import timer_text
from .registry import Registry
from .spec import FlowSpec, StateSpec, TransitionSpec, load_flow
from .store import Store, open_store

Op = Literal["added", "removed", "changed"]
Kind = Literal["flow", "state", "transition", "timer", "event", "guard", "effect"]

_MARK = {"added": "+", "removed": "-", "changed": "~"}
_COSMETIC = frozenset({"label", "description"})
_STATE_FIELDS = ("initial", "final", "status", "effect", "outcomes", "emit", "label", "description")
"""Compared first, in this order; any other field a state has is compared after them
(timers are not: they have their own group)."""
_TRANSITION_OWN = frozenset(
    {"event", "sources", "to", "guards", "unless", "effects", "description"}
)
_FLOW_OWN = frozenset({"flowengine", "name", "version", "description", "states", "transitions"})


@dataclass(frozen=True)
class Change:
    """One difference: ``kind`` of thing, ``op`` done to it, and what it was and became.

    ``before``/``after`` are JSON values: the whole thing when it was added or removed,
    only the fields that differ when it changed. ``details`` says the same for people.
    ``state`` is the state the change is about (a transition's source, a timer's state).
    """

    kind: Kind
    op: Op
    key: str
    state: str | None = None
    before: Any = None
    after: Any = None
    details: tuple[str, ...] = ()
    cosmetic: bool = False
    """Only a label or description changed: no session behaves differently."""

    def line(self) -> str:
        text = f"  {_MARK[self.op]} {self.key}"
        if self.details:
            joined = "; ".join(self.details)
            text += (" " if joined.startswith("→") else ": ") + joined
        if self.cosmetic:
            text += "  (cosmetic)"
        return text

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "op": self.op, "key": self.key}
        if self.state is not None:
            data["state"] = self.state
        if self.before is not None:
            data["before"] = self.before
        if self.after is not None:
            data["after"] = self.after
        if self.details:
            data["details"] = list(self.details)
        if self.cosmetic:
            data["cosmetic"] = True
        return data


@dataclass
class FlowDiff:
    """Every difference between two versions of a flow, grouped by kind."""

    name: str
    old_version: str
    new_version: str
    old_hash: str
    new_hash: str
    flow: list[Change] = field(default_factory=list)
    states: list[Change] = field(default_factory=list)
    transitions: list[Change] = field(default_factory=list)
    timers: list[Change] = field(default_factory=list)
    events: list[Change] = field(default_factory=list)
    guards: list[Change] = field(default_factory=list)
    effects: list[Change] = field(default_factory=list)
    old_states: tuple[str, ...] = ()
    new_states: tuple[str, ...] = ()

    GROUPS: ClassVar[tuple[str, ...]] = (
        "flow",
        "states",
        "transitions",
        "timers",
        "events",
        "guards",
        "effects",
    )

    @property
    def changes(self) -> list[Change]:
        return [change for group in self.GROUPS for change in getattr(self, group)]

    @property
    def identical(self) -> bool:
        return not self.changes

    def affected_states(self) -> set[str]:
        """States where a session sitting today may behave differently under the new version.

        Removed states, states changed other than cosmetically (timers included), and
        sources of changed or removed transitions. Added states and added transitions
        are not: nothing is there yet, or the old ways out still work.
        """
        affected: set[str] = set()
        for change in self.states:
            if change.op != "added" and not change.cosmetic:
                affected.add(change.key)
        for change in (*self.transitions, *self.timers):
            if change.state is not None and change.op != "added":
                affected.add(change.state)
        # A timer added to a state that existed: sessions already there have no such timer.
        for change in self.timers:
            if change.op == "added" and change.state in self.old_states:
                affected.add(change.state)
        return affected

    def ordered(self, states: Iterable[str]) -> list[str]:
        """``states`` in the flows' own order (old version first), unknown ones last."""
        rank = {name: i for i, name in enumerate(dict.fromkeys(self.old_states + self.new_states))}
        return sorted(states, key=lambda s: (rank.get(s, len(rank)), s))

    def to_dict(self) -> dict[str, Any]:
        return {
            "flow": self.name,
            "old": {"version": self.old_version, "hash": self.old_hash},
            "new": {"version": self.new_version, "hash": self.new_hash},
            "identical": self.identical,
            "changes": {
                group: [c.to_dict() for c in getattr(self, group)] for group in self.GROUPS
            },
            "affected_states": self.ordered(self.affected_states()),
        }

    def format(self) -> str:
        """The differences as text, by kind: ``+`` added, ``-`` removed, ``~`` changed."""
        head = f"flow {self.name}: version {self.old_version} → {self.new_version}"
        if self.identical:
            return head + ": no differences"
        counts = Counter(change.op for change in self.changes)
        summary = ", ".join(
            f"{counts[op]} {op}" for op in ("added", "removed", "changed") if op in counts
        )
        lines = [f"{head} ({summary})"]
        titles = {
            "transitions": "transitions (event from source)",
            "timers": "timers (state: event)",
        }
        for group in self.GROUPS:
            changes: list[Change] = getattr(self, group)
            if changes:
                lines.append("")
                lines.append(titles.get(group, group))
                lines.extend(change.line() for change in changes)
        affected = self.ordered(self.affected_states())
        lines.append("")
        lines.append("affected states: " + (", ".join(affected) or "none"))
        return "\n".join(lines)


def diff_flows(old: FlowSpec, new: FlowSpec) -> FlowDiff:
    """Compare two versions of a flow (normally the same ``name``)."""
    diff = FlowDiff(
        name=new.name,
        old_version=old.version,
        new_version=new.version,
        old_hash=old.content_hash,
        new_hash=new.content_hash,
        old_states=tuple(old.states),
        new_states=tuple(new.states),
    )
    diff.flow = _flow_changes(old, new)
    diff.states = _state_changes(old, new)
    diff.transitions = _transition_changes(old, new)
    diff.timers = _timer_changes(old, new)
    diff.events = _name_changes("event", old.events(), new.events())
    diff.guards = _name_changes("guard", _guards(old), _guards(new))
    diff.effects = _name_changes("effect", _effects(old), _effects(new))
    return diff


# -- flow ---------------------------------------------------------------------------------


def _flow_changes(old: FlowSpec, new: FlowSpec) -> list[Change]:
    changes: list[Change] = []
    if old.name != new.name:
        changes.append(
            Change(
                "flow",
                "changed",
                "name",
                before=old.name,
                after=new.name,
                details=(f"{old.name} → {new.name}",),
            )
        )
    if old.description.strip() != new.description.strip():
        changes.append(
            Change(
                "flow",
                "changed",
                "description",
                before=old.description,
                after=new.description,
                details=("text changed",),
                cosmetic=True,
            )
        )
    for key in FlowSpec.model_fields:
        if key in _FLOW_OWN:
            continue
        before, after = _json(getattr(old, key)), _json(getattr(new, key))
        if before == after:
            continue
        text = (
            f"{_upgrade_text(old)} → {_upgrade_text(new)}"
            if key == "upgrade"
            else f"{_compact(before)} → {_compact(after)}"
        )
        changes.append(Change("flow", "changed", key, before=before, after=after, details=(text,)))
    return changes


def _json(value: Any) -> Any:
    """A model field's value as JSON (models and containers of models included)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    if isinstance(value, Mapping):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    return value


def _compact(value: Any) -> str:
    if value in (None, {}, []):
        return "(none)"
    return value if isinstance(value, str) else json.dumps(value, separators=(", ", ": "))


def _upgrade_text(spec: FlowSpec) -> str:
    upgrade = spec.upgrade
    if isinstance(upgrade, str):
        return upgrade
    pairs = ", ".join(f"{a}→{b}" for a, b in upgrade.migrate.items())
    return f"from {', '.join(upgrade.versions)} migrating {pairs}"


# -- states -------------------------------------------------------------------------------


def _state_json(state: StateSpec) -> dict[str, Any]:
    data: dict[str, Any] = state.model_dump(mode="json", exclude_defaults=True)
    return data


def _state_summary(name: str, state: StateSpec) -> str:
    parts: list[str] = []
    if state.initial:
        parts.append("initial")
    if state.final:
        parts.append("final")
    if state.status_name(name) != name:
        parts.append(f"status {state.status_name(name)}")
    if state.effect:
        parts.append(f"do {state.effect}")
    if state.outcomes:
        parts.append(", ".join(f"{arm} → {target}" for arm, target in state.outcomes.items()))
    if state.timers:
        parts.append(
            "timers "
            + ", ".join(f"{t.event} {timer_text(t.after or 'expires_at')}" for t in state.timers)
        )
    if state.emit:
        parts.append("emits " + ", ".join(state.emit))
    return "; ".join(parts)


def _field_value(name: str, state: StateSpec, key: str) -> Any:
    if key == "status":
        return state.status_name(name)
    return _json(getattr(state, key))


def _state_fields() -> list[str]:
    others = [k for k in StateSpec.model_fields if k not in _STATE_FIELDS and k != "timers"]
    return [*_STATE_FIELDS, *others]


def _state_changes(old: FlowSpec, new: FlowSpec) -> list[Change]:
    changes: list[Change] = []
    for name, state in old.states.items():
        if name not in new.states:
            changes.append(
                Change(
                    "state",
                    "removed",
                    name,
                    state=name,
                    before=_state_json(state),
                    details=_nonempty(_state_summary(name, state)),
                )
            )
    for name, state in new.states.items():
        if name not in old.states:
            changes.append(
                Change(
                    "state",
                    "added",
                    name,
                    state=name,
                    after=_state_json(state),
                    details=_nonempty(_state_summary(name, state)),
                )
            )
            continue
        was = old.states[name]
        before: dict[str, Any] = {}
        after: dict[str, Any] = {}
        details: list[str] = []
        for key in _state_fields():
            a, b = _field_value(name, was, key), _field_value(name, state, key)
            if a == b:
                continue
            before[key], after[key] = a, b
            details.extend(_field_details(key, a, b))
        if details:
            cosmetic = set(before) <= _COSMETIC
            changes.append(
                Change(
                    "state",
                    "changed",
                    name,
                    state=name,
                    before=before,
                    after=after,
                    details=tuple(details),
                    cosmetic=cosmetic,
                )
            )
    return changes


def _field_details(key: str, a: Any, b: Any) -> list[str]:
    if key == "outcomes":
        lines = []
        for arm in dict.fromkeys([*a, *b]):
            if arm not in a:
                lines.append(f"outcome {arm}: + {b[arm]}")
            elif arm not in b:
                lines.append(f"outcome {arm}: - {a[arm]}")
            elif a[arm] != b[arm]:
                lines.append(f"outcome {arm}: {a[arm]} → {b[arm]}")
        return lines
    if key in _COSMETIC:
        return [f"{key} {_show(a)} → {_show(b)}"]
    return [f"{key}: {_show(a)} → {_show(b)}"]


def _show(value: Any) -> str:
    if value is None or value == [] or value == "":
        return "(none)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict) or (
        isinstance(value, list) and any(isinstance(v, dict) for v in value)
    ):
        return json.dumps(value, separators=(", ", ": "))
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, str) and " " in value:
        return repr(value)
    return str(value)


def _nonempty(text: str) -> tuple[str, ...]:
    return (text,) if text else ()


# -- transitions --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Branch:
    to: str
    guards: tuple[str, ...]
    unless: tuple[str, ...]
    effects: tuple[str, ...]
    condition: tuple[frozenset[str], frozenset[str]]
    other: tuple[tuple[str, str], ...] = ()
    """Any other field the language gives transitions (JSON text), description aside."""

    @classmethod
    def of(cls, transition: TransitionSpec) -> _Branch:
        other = tuple(
            (key, json.dumps(_json(getattr(transition, key)), sort_keys=True))
            for key in TransitionSpec.model_fields
            if key not in _TRANSITION_OWN
            and getattr(transition, key)
            != TransitionSpec.model_fields[key].get_default(call_default_factory=True)
        )
        return cls(
            transition.to,
            tuple(transition.guards),
            tuple(transition.unless),
            tuple(transition.effects),
            transition.condition,
            other,
        )

    def same(self, other: _Branch) -> bool:
        return (self.to, self.condition, self.effects, self.other) == (
            other.to,
            other.condition,
            other.effects,
            other.other,
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"to": self.to}
        for key in ("guards", "unless", "effects"):
            if getattr(self, key):
                data[key] = list(getattr(self, key))
        for key, text in self.other:
            data[key] = json.loads(text)
        return data

    def text(self) -> str:
        text = f"→ {self.to}"
        condition = " and ".join([*self.guards, *(f"not {g}" for g in self.unless)])
        if condition:
            text += f" [{condition}]"
        if self.effects:
            text += " / " + ", ".join(self.effects)
        return text

    def differences(self, other: _Branch) -> list[str]:
        lines = []
        if self.to != other.to:
            lines.append(f"to {self.to} → {other.to}")
        for key in ("guards", "unless", "effects"):
            a, b = getattr(self, key), getattr(other, key)
            if (set(a) != set(b)) if key != "effects" else (a != b):
                lines.append(f"{key} {_show(list(a))} → {_show(list(b))}")
        mine, theirs = dict(self.other), dict(other.other)
        for key in dict.fromkeys([*mine, *theirs]):
            if mine.get(key) != theirs.get(key):
                lines.append(f"{key} {mine.get(key, '(none)')} → {theirs.get(key, '(none)')}")
        return lines


def _transitions(spec: FlowSpec) -> dict[tuple[str, str], list[_Branch]]:
    keyed: dict[tuple[str, str], list[_Branch]] = {}
    for transition in spec.transitions:
        for source in transition.sources:
            keyed.setdefault((transition.event, source), []).append(_Branch.of(transition))
    return keyed


def _transition_changes(old: FlowSpec, new: FlowSpec) -> list[Change]:
    before, after = _transitions(old), _transitions(new)
    changes: list[Change] = []
    for key, branches in before.items():
        if key not in after:
            changes.append(_transition_change("removed", key, branches, None))
    for key, branches in after.items():
        if key not in before:
            changes.append(_transition_change("added", key, None, branches))
            continue
        was = before[key]
        if len(was) == len(branches) and all(a.same(b) for a, b in zip(was, branches, strict=True)):
            continue
        changes.append(_transition_change("changed", key, was, branches))
    return changes


def _transition_change(
    op: Op,
    key: tuple[str, str],
    was: Sequence[_Branch] | None,
    now: Sequence[_Branch] | None,
) -> Change:
    event, source = key
    if op == "changed" and was is not None and now is not None:
        details = _branch_differences(was, now)
    else:
        details = [" | ".join(b.text() for b in (now or was or ()))]
    return Change(
        "transition",
        op,
        f"{event} from {source}",
        state=source,
        before=[b.to_dict() for b in was] if was is not None else None,
        after=[b.to_dict() for b in now] if now is not None else None,
        details=tuple(details),
    )


def _branch_differences(was: Sequence[_Branch], now: Sequence[_Branch]) -> list[str]:
    if len(was) == 1 and len(now) == 1:
        return was[0].differences(now[0]) or ["order"]
    lines: list[str] = []
    matched: set[int] = set()
    for branch in was:
        twin = next(
            (i for i, b in enumerate(now) if i not in matched and b.condition == branch.condition),
            None,
        )
        if twin is None:
            lines.append(f"- branch {branch.text()}")
            continue
        matched.add(twin)
        for difference in branch.differences(now[twin]):
            lines.append(f"branch [{_condition(branch)}]: {difference}")
    lines.extend(f"+ branch {b.text()}" for i, b in enumerate(now) if i not in matched)
    return lines or ["branch order"]


def _condition(branch: _Branch) -> str:
    return " and ".join([*branch.guards, *(f"not {g}" for g in branch.unless)]) or "always"


# -- timers -------------------------------------------------------------------------------


def _timers(spec: FlowSpec) -> dict[tuple[str, str], list[str]]:
    keyed: dict[tuple[str, str], list[str]] = {}
    for name, state in spec.states.items():
        for timer in state.timers:
            keyed.setdefault((name, timer.event), []).append(
                timer_text(timer.after or "expires_at")
            )
    return keyed


def _timer_changes(old: FlowSpec, new: FlowSpec) -> list[Change]:
    before, after = _timers(old), _timers(new)
    changes: list[Change] = []
    for (state, event), clocks in before.items():
        if (state, event) not in after:
            changes.append(
                Change(
                    "timer",
                    "removed",
                    f"{state}: {event}",
                    state=state,
                    before=clocks,
                    details=(", ".join(clocks),),
                )
            )
    for (state, event), clocks in after.items():
        was = before.get((state, event))
        if was is None:
            changes.append(
                Change(
                    "timer",
                    "added",
                    f"{state}: {event}",
                    state=state,
                    after=clocks,
                    details=(", ".join(clocks),),
                )
            )
        elif was != clocks:
            changes.append(
                Change(
                    "timer",
                    "changed",
                    f"{state}: {event}",
                    state=state,
                    before=was,
                    after=clocks,
                    details=(f"{', '.join(was)} → {', '.join(clocks)}",),
                )
            )
    return changes


# -- names --------------------------------------------------------------------------------


def _guards(spec: FlowSpec) -> list[str]:
    return list(dict.fromkeys(name for t in spec.transitions for name in (*t.guards, *t.unless)))


def _effects(spec: FlowSpec) -> list[str]:
    names = [state.effect for state in spec.states.values() if state.effect]
    names += [effect for t in spec.transitions for effect in t.effects]
    return list(dict.fromkeys(names))


def _name_changes(kind: Kind, old: Sequence[str], new: Sequence[str]) -> list[Change]:
    gone = [Change(kind, "removed", name) for name in old if name not in new]
    return gone + [Change(kind, "added", name) for name in new if name not in old]


# -- live sessions ------------------------------------------------------------------------


def live_counts(
    store: Store,
    flow_name: str,
    registry: Registry | None = None,
    *,
    known: Iterable[FlowSpec] = (),
) -> dict[str, int]:
    """How many live sessions of ``flow_name`` sit in each state, by state name.

    Live: not in a final state of the version the session itself runs. Each version is
    read from the store once (``known`` specs, e.g. the two being compared, are used
    as they are when their content hash matches); ``registry`` checks the guard and
    effect names of stored texts, as when they were loaded first.
    """
    specs: dict[str, FlowSpec] = {spec.content_hash: spec for spec in known}
    counts: Counter[str] = Counter()
    with store.transaction() as tx:
        for record in tx.sessions_of_flow(flow_name):
            spec = specs.get(record.flow_hash)
            if spec is None:
                stored = tx.get_flow_version(record.flow_hash)
                if stored is None or not stored.text:
                    raise FlowEngineError(
                        f"session {record.session_id} runs flow {flow_name} version "
                        f"{record.flow_version} ({record.flow_hash[:12]}), whose text the "
                        "store does not have"
                    )
                spec = load_flow(
                    f"<stored flow {stored.name} v{stored.version}>",
                    text=stored.text,
                    registry=registry,
                )
                specs[record.flow_hash] = spec
            state = spec.states.get(record.state)
            if state is None or not state.final:
                counts[record.state] += 1
    return dict(counts)


# -- command line -------------------------------------------------------------------------


def add_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """Register ``flowengine flows`` with its ``diff`` action; return the ``flows`` actions
    (so more actions, e.g. ``check`` and ``deploy``, can be added to the same parser)."""
    flows = commands.add_parser("flows", help="compare, check and deploy flow versions")
    actions = flows.add_subparsers(required=True, metavar="ACTION")
    diff = actions.add_parser(
        "diff",
        help="what changed between two flow files (and live sessions affected, with --store)",
        description="States, transitions, timers, events, guards and effects added, removed or "
        "changed between OLD and NEW. Exits 0 whether or not they differ.",
    )
    diff.add_argument("old", type=Path, metavar="OLD", help="the flow file as it is")
    diff.add_argument("new", type=Path, metavar="NEW", help="the flow file as it would be")
    diff.add_argument("--store", help="count live sessions of the flow in each affected state")
    diff.add_argument("--json", action="store_true", help="print JSON instead of text")
    diff.set_defaults(run=_diff_command)
    return actions


def _diff_command(args: argparse.Namespace) -> int:
    old, new = load_flow(args.old), load_flow(args.new)
    diff = diff_flows(old, new)
    live: dict[str, int] | None = None
    if args.store:
        store = open_store(args.store, existing=True)
        try:
            counts = live_counts(store, old.name, known=(old, new))
        finally:
            store.close()
        live = {state: counts.get(state, 0) for state in diff.ordered(diff.affected_states())}
    if args.json:
        data = diff.to_dict()
        if live is not None:
            data["live_sessions"] = live
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return 0
    print(diff.format())
    if live is not None:
        print()
        print(format_live(diff, live))
    return 0


def format_live(diff: FlowDiff, live: Mapping[str, int]) -> str:
    """The live sessions in each affected state, with why the state is affected."""
    if not live:
        return "live sessions in affected states: none affected"
    total = sum(live.values())
    lines = [f"live sessions in affected states: {total}"]
    width = max(len(state) for state in live)
    for state, count in live.items():
        lines.append(f"  {state:<{width}}  {count:>6}   {_why(diff, state)}")
    return "\n".join(lines)


def _why(diff: FlowDiff, state: str) -> str:
    reasons: list[str] = []
    for change in diff.states:
        if change.key == state and change.op != "added" and not change.cosmetic:
            reasons.append(f"state {change.op}")
    for change in diff.transitions:
        if change.state == state and change.op != "added":
            reasons.append(f"{change.key.split(' from ')[0]} {change.op}")
    for change in diff.timers:
        if change.state == state:
            reasons.append(f"timer {change.key.split(': ', 1)[1]} {change.op}")
    return ", ".join(reasons)
