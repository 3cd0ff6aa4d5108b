"""Drawing flows with Graphviz, and keeping the committed diagrams/ in step with flows/."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import pytest

from flowengine import FlowEngineError, load_flow
from flowengine.cli import main
from flowengine.diagrams import flow_digraph, render
from flowengine.paths import all_paths

ROOT = Path(__file__).parent.parent
FLOWS = sorted((ROOT / "flows").glob("*.yaml"))
DEPOSIT = ROOT / "flows" / "deposit.yaml"
HIGHLIGHT = "#1d5fd1"


def _dot(path: Path = DEPOSIT, highlight: tuple[str, ...] = ()) -> str:
    return render(load_flow(path), "dot", highlight=highlight).decode()


def _line(dot: str, start: str) -> str:
    """The one DOT statement that starts with ``start`` (a node name or ``a -> b``)."""
    found = [line.strip() for line in dot.splitlines() if line.strip().startswith(start + " [")]
    assert len(found) == 1, f"{start!r}: {found}"
    return found[0]


def test_every_state_is_a_node_with_its_label_and_name() -> None:
    dot = _dot()
    spec = load_flow(DEPOSIT)

    for name in spec.states:
        assert _line(dot, name).startswith(f"{name} [label=<")
    assert "<B>Waiting for the payer</B>" in _line(dot, "created")
    assert "review · status: requires_review" in _line(dot, "review")


def test_a_state_shows_its_effect_and_webhooks() -> None:
    paid = _line(_dot(), "paid")

    assert "<I>do</I> / evm.deliver" in paid
    assert 'POINT-SIZE="9"' in paid
    assert "session.processing" in paid


def test_the_start_and_the_final_states() -> None:
    dot = _dot()

    assert "__start__ -> created" in dot
    assert "shape=circle" in _line(dot, "__start__")
    for final in ("completed", "bounced", "expired"):
        assert "peripheries=2" in _line(dot, final)
    assert "peripheries" not in _line(dot, "paid")


def test_edge_labels_and_styles() -> None:
    dot = _dot()

    assert 'label="select_amount [not amount_fixed]"' in _line(dot, "created -> amount_selected")
    assert 'label="payment_detected [amount_fixed]"' in _line(dot, "created -> paid")
    expire = _line(dot, "created -> expired")
    assert 'label="expire\\nat expiry"' in expire
    assert "style=dashed" in expire
    done, failed = _line(dot, "paid -> delivered"), _line(dot, "paid -> refunding")
    assert "label=done" in done
    assert "style=solid" in done
    assert "label=failed" in failed
    assert 'color="#c23b3b"' in failed


TIMED_FLOW = """
flowengine: 1
name: timed
version: 2
states:
  waiting:
    initial: true
    label: Waiting <for> "funds" & more
    timers: [{after: 30m, event: give_up}]
  paid: {final: true}
  gone: {final: true}
transitions:
  - {event: pay, from: waiting, to: paid, effects: evm.settle}
  - {event: give_up, from: waiting, to: gone}
"""


def test_timers_after_a_delay_transition_effects_and_escaping() -> None:
    dot = render(load_flow("timed.yaml", text=TIMED_FLOW), "dot").decode()

    assert 'label="give_up\\nafter 30m"' in _line(dot, "waiting -> gone")
    assert 'label="pay / evm.settle"' in _line(dot, "waiting -> paid")
    assert "Waiting &lt;for&gt; &quot;funds&quot; &amp; more" in _line(dot, "waiting")


def test_highlight_colours_the_path_taken() -> None:
    path = next(
        p for p in all_paths(load_flow(DEPOSIT)) if p.states[-2:] == ("refunding", "bounced")
    )
    assert path.states == (
        "created",
        "amount_selected",
        "paid",
        "refunding",
        "bounced",
    )

    dot = _dot(highlight=path.states)

    for state in path.states:
        assert f'color="{HIGHLIGHT}"' in _line(dot, state), state
    for source, target in zip(path.states, path.states[1:], strict=False):
        assert f'color="{HIGHLIGHT}"' in _line(dot, f"{source} -> {target}")
    assert f'color="{HIGHLIGHT}"' in _line(dot, "__start__ -> created")
    for untouched in ("completed", "review", "created -> paid", "paid -> delivered"):
        assert HIGHLIGHT not in _line(dot, untouched), untouched


def test_the_digraph_can_be_used_directly() -> None:
    digraph = flow_digraph(load_flow(DEPOSIT))

    assert digraph.name == "deposit"
    assert "rankdir=LR" in digraph.source


def test_dot_needs_no_graphviz_but_svg_says_what_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "")
    spec = load_flow(DEPOSIT)

    assert render(spec, "dot").startswith(b"// flow 'deposit' version 1")
    with pytest.raises(FlowEngineError, match="needs Graphviz's 'dot' program"):
        render(spec, "svg")


def test_svg_and_png_render() -> None:
    spec = load_flow(DEPOSIT)

    svg = render(spec, "svg").decode()
    assert "<svg" in svg
    assert ">Waiting for the payer</text>" in svg
    assert render(spec, "png").startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize("fmt", ["dot", "svg"])
def test_rendering_is_deterministic(fmt: Literal["dot", "svg"]) -> None:
    assert render(load_flow(DEPOSIT), fmt) == render(load_flow(DEPOSIT), fmt)


_GRAPHVIZ_VERSION = re.compile(rb"<!-- Generated by graphviz version .*? -->", re.DOTALL)


def _without_graphviz_version(svg: bytes) -> bytes:
    return _GRAPHVIZ_VERSION.sub(b"<!-- Generated by graphviz -->", svg)


@pytest.mark.parametrize("flow", FLOWS, ids=lambda path: path.stem)
def test_committed_diagrams_are_up_to_date(flow: Path) -> None:
    spec = load_flow(flow)
    stale = (
        f"diagrams/{flow.stem}.{{}} differs from a fresh drawing of flows/{flow.name} "
        "(the flow or flowengine/diagrams.py changed): run `make diagrams` and commit it"
    )

    dot_file, svg_file = (
        ROOT / "diagrams" / f"{flow.stem}.dot",
        ROOT / "diagrams" / f"{flow.stem}.svg",
    )
    assert dot_file.exists(), stale.format("dot")
    assert dot_file.read_bytes() == render(spec, "dot"), stale.format("dot")
    assert svg_file.exists(), stale.format("svg")
    assert _without_graphviz_version(svg_file.read_bytes()) == _without_graphviz_version(
        render(spec, "svg")
    ), stale.format("svg")


def test_no_diagram_without_its_flow() -> None:
    drawn = {path.stem for path in (ROOT / "diagrams").glob("*.dot")}
    drawn |= {path.stem for path in (ROOT / "diagrams").glob("*.svg")}

    assert drawn == {flow.stem for flow in FLOWS}, "run `make diagrams`, remove orphans"


def test_cli_diagram_to_stdout_and_to_a_file(
    capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path
) -> None:
    assert main(["diagram", str(DEPOSIT)]) == 0
    assert capsysbinary.readouterr().out == render(load_flow(DEPOSIT), "dot")

    target = tmp_path / "out" / "deposit.svg"
    assert main(["diagram", str(DEPOSIT), "-o", str(target), "--highlight", "created,paid"]) == 0
    assert capsysbinary.readouterr().out.decode().strip() == f"wrote {target}"
    svg = target.read_text()
    assert svg.lstrip().startswith("<?xml")
    assert HIGHLIGHT in svg


def test_cli_diagram_rejects_an_unknown_highlight_state(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["diagram", str(DEPOSIT), "--highlight", "created,nowhere"]) == 1

    assert capsys.readouterr().err.strip() == ("error: --highlight names unknown states: nowhere")
