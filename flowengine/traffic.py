"""Where sessions of a flow actually went: edge counts and time spent, from the event log.

The log is the truth (see :mod:`flowengine.engine`): each row says which event moved a
session from ``source`` to ``target`` and when. Consecutive rows of one session give

* an **edge count** per ``(source, event, target)`` — the start (``session.created``,
  source ``""``) included — which :func:`flowengine.diagrams.flow_digraph` matches to
  the drawn flow's arrows (transitions, effect outcomes and timers alike);
* a **stay** in each state: the next row's ``created_at`` minus the ``created_at`` of
  the row that entered it; a state's median stay is over finished stays only (a
  session still sitting somewhere has not finished its stay).

Two kinds of rows are not transitions. A row whose ``meta`` has ``applied: false``
(a fact logged for review without moving the session) is skipped. A ``flow.migrated``
row moves a session to another version of its flow, at its next event: it is counted
in ``migrations`` and draws no arrow; the stay it interrupts goes on under the new
state's name (the session did not leave; its state was renamed).
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from .migration import MIGRATED_EVENT
from .spec import FlowSpec
from .store import EventRecord, Store

CREATED_EVENT = "session.created"

EdgeKey = tuple[str, str, str]
"""``(source, event, target)``; the start of a session is ``("", "session.created", initial)``."""


@dataclass(frozen=True)
class Traffic:
    """What the sessions of one flow did, read from the store's event log."""

    flow: str
    sessions: int = 0
    edges: Mapping[EdgeKey, int] = field(default_factory=dict)
    """How many times each ``(source, event, target)`` was taken."""
    median_seconds: Mapping[str, float] = field(default_factory=dict)
    """Median finished stay in each state, in seconds (absent: no finished stay)."""
    stays: Mapping[str, int] = field(default_factory=dict)
    """How many finished stays each median is over."""
    migrations: int = 0
    """``flow.migrated`` rows: sessions moved to another version of the flow."""
    unapplied: int = 0
    """Rows logged without a transition (``meta.applied == False``), left out."""

    def count(self, source: str, event: str, target: str) -> int:
        return self.edges.get((source, event, target), 0)

    def edge_counts(self, spec: FlowSpec) -> list[int]:
        """The count of each of ``spec.edges()``, in that order.

        An arrow is matched by its source, event and target. Two arrows with all three
        equal (the same event under different guards, to the same place) cannot be told
        apart in the log: the first one gets the count.
        """
        seen: set[EdgeKey] = set()
        counts: list[int] = []
        for edge in spec.edges():
            key = (edge.source, edge.event, edge.target)
            counts.append(0 if key in seen else self.edges.get(key, 0))
            seen.add(key)
        return counts

    def started(self, spec: FlowSpec) -> int:
        """Sessions that started in ``spec``'s initial state."""
        return self.count("", CREATED_EVENT, spec.initial_state)

    def unmatched(self, spec: FlowSpec) -> int:
        """Transitions taken that ``spec`` has no arrow for (another version's, say)."""
        drawn = {(e.source, e.event, e.target) for e in spec.edges()}
        drawn.add(("", CREATED_EVENT, spec.initial_state))
        return sum(n for key, n in self.edges.items() if key not in drawn)

    def busiest(self) -> int:
        """The largest edge count, starts excluded (1 when there is no traffic)."""
        return max((n for (source, _, _), n in self.edges.items() if source), default=0) or 1


def traffic_from_store(store: Store, flow_name: str) -> Traffic:
    """The traffic of every session of ``flow_name`` (all its versions) in ``store``."""
    with store.transaction() as tx:
        sessions = len(tx.sessions_of_flow(flow_name))
        rows = tx.events_of_flow(flow_name)
    return traffic_from_events(flow_name, rows, sessions=sessions)


def traffic_from_events(
    flow_name: str, rows: Iterable[EventRecord], *, sessions: int | None = None
) -> Traffic:
    """The traffic in ``rows``: the logs of any number of sessions, in any order."""
    logs: dict[str, list[EventRecord]] = defaultdict(list)
    for row in rows:
        logs[row.session_id].append(row)
    edges: Counter[EdgeKey] = Counter()
    durations: dict[str, list[float]] = defaultdict(list)
    migrations = unapplied = 0
    for log in logs.values():
        log.sort(key=lambda r: r.seq)
        state: str | None = None
        entered_at = 0
        for row in log:
            if row.meta.get("applied") is False:
                unapplied += 1
                continue
            if row.event == MIGRATED_EVENT:
                migrations += 1
                state = row.target  # the same stay, under the new version's name
                continue
            if state is not None:
                durations[state].append((row.created_at - entered_at) / 1000)
            edges[(row.source, row.event, row.target)] += 1
            state, entered_at = row.target, row.created_at
    return Traffic(
        flow=flow_name,
        sessions=len(logs) if sessions is None else sessions,
        edges=dict(edges),
        median_seconds={s: float(statistics.median(d)) for s, d in durations.items()},
        stays={s: len(d) for s, d in durations.items()},
        migrations=migrations,
        unapplied=unapplied,
    )


def session_path(
    events: Sequence[EventRecord], spec: FlowSpec | None = None
) -> tuple[list[str], list[tuple[str, str]]]:
    """One session's states in order, and where it migrated: ``(states, [(state, label)])``.

    ``events`` is the session's log, oldest first. Rows logged without a transition are
    left out. A ``flow.migrated`` row adds its target state and a mark
    ``(state, "migrated v1→v2")``.

    With ``spec`` (the version being drawn), states logged before a migration into it
    are read through its ``upgrade.migrate`` map, and states it does not have are left
    out, so the path reads in that version's names and its arrows light up.
    """
    rows = [row for row in events if row.meta.get("applied") is not False]
    rename = _renames(rows, spec)
    states: list[str] = []
    migrations: list[tuple[str, str]] = []
    for index, row in enumerate(rows):
        target = rename[index].get(row.target, row.target)
        if row.event == MIGRATED_EVENT:
            versions = row.meta.get("from_version", "?"), row.meta.get("to_version", "?")
            label = "migrated v{} → v{}".format(*versions)
            where = target
            if spec is not None and where not in spec.states and row.source in spec.states:
                where = row.source
            migrations.append((where, label))
            if states and states[-1] == target:
                continue  # the mapped name of where it already was
        if spec is not None and target not in spec.states:
            continue
        states.append(target)
    return states, migrations


def _renames(rows: Sequence[EventRecord], spec: FlowSpec | None) -> list[Mapping[str, str]]:
    """For each row, the map that turns its state names into ``spec``'s (often none).

    Rows before the last migration into ``spec`` (by content hash) are renamed with
    ``spec.upgrade.migrate`` when the upgrade covers the version they ran.
    """
    none: Mapping[str, str] = {}
    maps: list[Mapping[str, str]] = [none] * len(rows)
    if spec is None or isinstance(spec.upgrade, str):
        return maps
    upgrade = spec.upgrade
    into = [
        i
        for i, row in enumerate(rows)
        if row.event == MIGRATED_EVENT and row.meta.get("to_hash") == spec.content_hash
    ]
    if not into:
        return maps
    last = into[-1]
    version = str(rows[last].meta.get("from_version", ""))
    if upgrade.covers(version):
        for i in range(last):
            maps[i] = upgrade.migrate
    return maps


def format_seconds(seconds: float) -> str:
    """A short duration for people: ``45s``, ``3m 20s``, ``2h 5m``, ``3d 4h``."""
    whole = round(seconds)
    if whole < 60:
        return f"{seconds:.1f}s" if 0 < seconds < 10 and seconds != whole else f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {secs}s" if secs else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h" if hours else f"{days}d"
