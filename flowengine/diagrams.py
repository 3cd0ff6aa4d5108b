"""Draw a flow as a Graphviz diagram: DOT text always, SVG or PNG through ``dot``.

The picture is built from the spec alone (:meth:`FlowSpec.edges`), the same arrows that
:mod:`flowengine.paths` walks and the compiler lowers, so what a reader sees is what the
machine does. A state shows its human label, its name, the status the API reports when
that differs, the effect it requests (``do / evm.deliver``) and the webhooks it sends.
Arrows are events (``event [guard] / effects``), effect outcomes (``done`` solid green,
``failed`` red) and timers (dashed, ``after 30m`` / ``at expiry``). ``highlight`` colours
the states one session went through and the arrows between them; ``migrations`` marks
the states where that session moved to another version of its flow.

``traffic`` (:func:`flowengine.traffic.traffic_from_store`) turns the drawing into a
heat map: each arrow is labelled with how many times sessions took it and drawn
heavier the busier it is (arrows nobody took are faded), each state shows the median
time sessions spent in it, and the title says how many sessions and migrations the
figures cover.

Output is deterministic — same flow, same bytes — because the rendered diagrams are
committed under ``diagrams/`` and a test compares them with a fresh render: nodes and
edges are emitted in the flow's own order, and nothing time- or run-dependent (dates,
ids, dict iteration of unordered sets) goes into the DOT text. DOT needs no Graphviz
binary (:attr:`graphviz.Digraph.source`); SVG and PNG run ``dot`` through
:meth:`graphviz.Digraph.pipe`.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from itertools import pairwise
from typing import Literal

import graphviz

from .errors import FlowEngineError
from .paths import timer_text
from .spec import Edge, FlowSpec, StateSpec
from .traffic import Traffic, format_seconds

Format = Literal["dot", "svg", "png"]

_FONT = "Helvetica,Arial,sans-serif"
_MONO = "Courier,monospace"

_INK = "#1f2933"
_MUTED = "#616e7c"
_STATE_FILL = "#f5f7fa"
_STATE_LINE = "#7b8794"
_EFFECT_FILL = "#fff8e1"
_EFFECT_LINE = "#c99a2e"
_EFFECT_TEXT = "#8a6212"
_FINAL_FILL = "#e4e7eb"
_EVENT_COLOUR = "#3e4c59"
_TIMER_COLOUR = "#7b8794"
_DEFAULT_ARM_COLOUR = "#b0b8c1"
_OUTCOME_COLOURS = {
    "done": "#2f8a4c",
    "failed": "#c23b3b",
    "pending": "#c77d12",
    "unknown": "#c77d12",
}
_HIGHLIGHT = "#1d5fd1"
_HIGHLIGHT_FILL = "#dce9fc"
_HEAT_TEXT = "#9a3412"
_IDLE = "#c3cad3"
_MIGRATED = "#7a3fc7"

_START = "__start__"


def flow_digraph(
    spec: FlowSpec,
    *,
    highlight: Sequence[str] = (),
    traffic: Traffic | None = None,
    migrations: Sequence[tuple[str, str]] = (),
) -> graphviz.Digraph:
    """The flow as a :class:`graphviz.Digraph`, left to right.

    ``highlight`` is a sequence of states visited in order (e.g. one session's history,
    or a :class:`~flowengine.paths.FlowPath`'s ``states``): those states are coloured,
    and so is every arrow from one of them to the next. ``migrations`` are
    ``(state, label)`` marks, e.g. ``("confirming", "migrated v1→v2")`` from
    :func:`flowengine.traffic.session_path`. ``traffic`` labels arrows with how often
    they were taken and states with their median stay.
    """
    visited = set(highlight)
    hops = set(pairwise(highlight))

    dot = graphviz.Digraph(
        name=spec.name,
        comment=f"flow '{spec.name}' version {spec.version}: drawn by `flowengine diagram`; "
        "edit the flow's YAML, not this file",
    )
    dot.attr(
        rankdir="LR",
        label=_title(spec, traffic),
        labelloc="t",
        labeljust="l",
        fontname=_FONT,
        fontsize="16",
        fontcolor=_INK,
        nodesep="0.45",
        ranksep="0.7",
        pad="0.3",
        bgcolor="white",
    )
    dot.attr(
        "node",
        shape="box",
        style="rounded,filled",
        fontname=_FONT,
        fontsize="11",
        fontcolor=_INK,
        penwidth="1.2",
        margin="0.15,0.08",
    )
    dot.attr("edge", fontname=_FONT, fontsize="10", arrowsize="0.7", penwidth="1.2")

    initial = spec.initial_state
    start_lit = bool(highlight) and highlight[0] == initial
    counts = traffic.edge_counts(spec) if traffic is not None else []
    started = traffic.started(spec) if traffic is not None else 0
    busiest = max([started, *counts, 1])
    dot.node(
        _START,
        label="",
        shape="circle",
        style="filled",
        width="0.18",
        fixedsize="true",
        fillcolor=_HIGHLIGHT if start_lit else _INK,
        color=_HIGHLIGHT if start_lit else _INK,
    )
    start_style = {
        "color": _HIGHLIGHT if start_lit else _INK,
        "penwidth": "2.2" if start_lit else "1.2",
    }
    if traffic is not None:
        start_style.update(_heat(started, busiest, "", start_lit))
    dot.edge(_START, initial, **start_style)

    marks: dict[str, list[str]] = {}
    for state_name, mark in migrations:
        marks.setdefault(state_name, []).append(mark)
    for name, state in spec.states.items():
        extra = [_migration_line(mark) for mark in marks.get(name, ())]
        if traffic is not None:
            extra.extend(_stay_lines(traffic, name))
        dot.node(
            name, label=_state_label(name, state, extra), **_state_style(state, name in visited)
        )

    edges = spec.edges()
    # The supplied pending and unknown arms of one effect share a target: one arrow,
    # drawn for pending, carrying unknown's traffic too.
    paired = {(e.source, e.target) for e in edges if e.default and e.effect == "pending"}
    unknown_counts: dict[str, int] = {}
    for index, edge in enumerate(edges):
        if edge.default and edge.effect == "unknown" and (edge.source, edge.target) in paired:
            unknown_counts[edge.source] = counts[index] if traffic is not None else 0
    for index, edge in enumerate(edges):
        if edge.default and edge.effect == "unknown" and edge.source in unknown_counts:
            continue
        lit = (edge.source, edge.target) in hops
        style = _edge_style(edge, lit)
        if traffic is not None:
            count = counts[index]
            if edge.default and edge.effect == "pending":
                count += unknown_counts.get(edge.source, 0)
            style.update(_heat(count, busiest, style["label"], lit))
        dot.edge(edge.source, edge.target, **style)
    return dot


def render(
    spec: FlowSpec,
    fmt: Format,
    *,
    highlight: Sequence[str] = (),
    traffic: Traffic | None = None,
    migrations: Sequence[tuple[str, str]] = (),
) -> bytes:
    """The diagram of ``spec`` as DOT source, SVG or PNG bytes (see :func:`flow_digraph`).

    DOT is produced without Graphviz installed; SVG and PNG need its ``dot`` program
    (Debian package ``graphviz``, installed by ``make setup``).
    """
    digraph = flow_digraph(spec, highlight=highlight, traffic=traffic, migrations=migrations)
    if fmt == "dot":
        source: str = digraph.source
        return source.encode("utf-8")
    if fmt not in ("svg", "png"):
        raise FlowEngineError(f"unknown diagram format '{fmt}'; use dot, svg or png")
    try:
        data: bytes = digraph.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise FlowEngineError(
            f"drawing {fmt.upper()} needs Graphviz's 'dot' program, which is not installed; "
            "install the 'graphviz' system package (make setup does), or use --format dot"
        ) from None
    except graphviz.CalledProcessError as exc:
        detail = exc.stderr.decode(errors="replace").strip() if exc.stderr else str(exc)
        raise FlowEngineError(f"Graphviz failed to draw flow '{spec.name}': {detail}") from None
    return data


def _title(spec: FlowSpec, traffic: Traffic | None) -> str:
    title = f"{spec.name} · version {spec.version}"
    if traffic is None:
        return title
    parts = [f"traffic of {_plural(traffic.sessions, 'session')}"]
    if traffic.migrations:
        parts.append(f"{_plural(traffic.migrations, 'migration')} between versions")
    unmatched = traffic.unmatched(spec)
    if unmatched:
        parts.append(f"{_plural(unmatched, 'step')} of other versions not drawn")
    return title + "\\l" + " · ".join(parts) + "\\l"


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _heat(count: int, busiest: int, label: str, lit: bool) -> dict[str, str]:
    """An arrow's traffic: its count under the label, a pen as heavy as its share."""
    if count == 0:
        style = {"penwidth": "1"}
        if not lit:
            style.update(color=_IDLE, fontcolor=_IDLE)
        return style
    text = escape(label).replace("\\n", "<BR/>")
    share = (count / busiest) ** 0.5
    count_text = f'<FONT COLOR="{_HEAT_TEXT}"><B>{count:,}×</B></FONT>'
    return {
        "label": f"<{text}<BR/>{count_text}>" if text else f"<{count_text}>",
        "penwidth": f"{1.2 + 4.8 * share:.1f}",
    }


def _stay_lines(traffic: Traffic, name: str) -> list[str]:
    median = traffic.median_seconds.get(name)
    if median is None:
        return []
    stays = traffic.stays.get(name, 0)
    return [_small(f"stayed {format_seconds(median)} (median of {stays:,})", _HEAT_TEXT)]


def _migration_line(mark: str) -> str:
    return f'<FONT POINT-SIZE="10" COLOR="{_MIGRATED}"><B>⤳ {escape(mark)}</B></FONT>'


def _state_label(name: str, state: StateSpec, extra: Sequence[str] = ()) -> str:
    """An HTML-like Graphviz label: title, name (and status), effect, webhooks."""
    title = state.label or name.replace("_", " ").capitalize()
    lines = [f"<B>{escape(title)}</B>"]
    ident = escape(name)
    status = state.status_name(name)
    if status != name:
        ident += f" · status: {escape(status)}"
    lines.append(_small(ident, _MUTED, face=_MONO))
    if state.effect:
        lines.append(f'<FONT COLOR="{_EFFECT_TEXT}"><I>do</I> / {escape(state.effect)}</FONT>')
    for webhook in state.emit:
        lines.append(_small(f"⇢ {escape(webhook)}", _MUTED))
    lines.extend(extra)
    return "<" + '<BR ALIGN="CENTER"/>'.join(lines) + ">"


def _small(text: str, colour: str, *, face: str = "") -> str:
    face_attr = f' FACE="{face}"' if face else ""
    return f'<FONT POINT-SIZE="9" COLOR="{colour}"{face_attr}>{text}</FONT>'


def _state_style(state: StateSpec, lit: bool) -> dict[str, str]:
    if state.final:
        style = {"fillcolor": _FINAL_FILL, "color": _STATE_LINE, "peripheries": "2"}
    elif state.effect:
        style = {"fillcolor": _EFFECT_FILL, "color": _EFFECT_LINE}
    else:
        style = {"fillcolor": _STATE_FILL, "color": _STATE_LINE}
    if lit:
        style.update(fillcolor=_HIGHLIGHT_FILL, color=_HIGHLIGHT, penwidth="2.2")
    return style


def _edge_style(edge: Edge, lit: bool) -> dict[str, str]:
    if edge.kind == "outcome" and edge.default:
        # Supplied by the language, not written in the flow: drawn faint.
        label = "pending | unknown" if edge.effect == "pending" else edge.effect
        style = {
            "label": f"{label}\\n(default, after polling)",
            "color": _DEFAULT_ARM_COLOUR,
            "fontcolor": _DEFAULT_ARM_COLOUR,
            "style": "dotted",
            "weight": "0",
        }
    elif edge.kind == "outcome":
        colour = _OUTCOME_COLOURS.get(edge.effect, _EVENT_COLOUR)
        style = {
            "label": edge.effect,
            "color": colour,
            "fontcolor": colour,
            "style": "solid" if edge.effect in ("done", "failed") else "dotted",
            # A heavier "done" keeps the happy path short and straight across the page.
            "weight": "3" if edge.effect == "done" else "1",
        }
    elif edge.kind == "timer":
        style = {
            "label": f"{edge.label()}\\n{timer_text(edge.timer)}",
            "color": _TIMER_COLOUR,
            "fontcolor": _TIMER_COLOUR,
            "style": "dashed",
        }
    else:
        style = {"label": edge.label(), "color": _EVENT_COLOUR, "fontcolor": _INK, "weight": "2"}
    if lit:
        style.update(color=_HIGHLIGHT, fontcolor=_HIGHLIGHT, penwidth="2.2")
    return style
