"""The README's "Changing a flow safely" example, run through the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowengine.cli import main
from flowengine.engine import Engine
from flowengine.flows import FlowRegistry
from flowengine.spec import load_flow
from tests.conftest import FLOWS
from tests.factories import create_request, without_refund_on_reverted_delivery

V1 = (FLOWS / "deposit.yaml").read_text()
PAY = {"units": 25_000_000, "txHash": "0x" + "aa" * 32}


@pytest.fixture
def live(tmp_path: Path) -> tuple[str, list[str]]:
    """A SQLite store with deposit v1 sessions: one waiting, one refunding, one done."""
    url = f"sqlite:///{tmp_path / 'sessions.db'}"
    engine = Engine(FlowRegistry.from_directory(FLOWS), url)
    ids = [engine.create_session(create_request()).session_id for _ in range(3)]
    engine.send(ids[1], "payment_detected", PAY)
    engine.send(ids[1], "evm.deliver.failed")
    engine.send(ids[2], "payment_detected", PAY)
    engine.send(ids[2], "evm.deliver.done", PAY)
    engine.send(ids[2], "evm.settle.done")
    engine.store.close()
    return url, ids


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "deposit.v2.yaml"
    path.write_text(text)
    return str(path)


def test_a_breaking_change_is_diffed_caught_and_not_deployed(
    live: tuple[str, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, ids = live
    v2 = write(
        tmp_path,
        V1.replace("version: 1\n", "version: 2\n", 1).replace(
            "outcomes: {done: bounced, failed: review}", "outcomes: {done: expired, failed: review}"
        ),
    )
    assert main(["flows", "diff", str(FLOWS / "deposit.yaml"), v2, "--store", url]) == 0
    diff = capsys.readouterr().out
    assert "refunding" in diff

    assert main(["flows", "check", v2, "--store", url, "--replay"]) == 0  # the change is ahead
    assert "ok:" in capsys.readouterr().out

    no_refund = write(
        tmp_path, without_refund_on_reverted_delivery(V1.replace("version: 1\n", "version: 3\n", 1))
    )
    assert main(["flows", "check", no_refund, "--store", url, "--replay"]) == 1
    report = capsys.readouterr().out
    assert ids[1] in report
    assert "event #3 'evm.deliver.failed'" in report

    assert main(["flows", "deploy", no_refund, "--store", url]) == 1
    assert "NOT deployed" in capsys.readouterr().out
    args = ["flows", "deploy", no_refund, "--store", url, "--force"]
    assert main(args) == 1  # --force alone is refused: an override needs a reason
    assert "--reason" in capsys.readouterr().err
    assert main([*args, "--reason", "hotfix"]) == 0
    assert "forced: hotfix" in capsys.readouterr().out


def test_traffic_and_a_sessions_path_are_drawn_from_the_store(
    live: tuple[str, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, ids = live
    heat = tmp_path / "heat.dot"
    args = ["diagram", str(FLOWS / "deposit.yaml"), "--store", url, "--heat", "-o", str(heat)]
    assert main([*args, "--format", "dot"]) == 0
    assert "1×" in heat.read_text()  # one session took each of the arrows it took
    path = tmp_path / "path.dot"
    assert main(["diagram", "--session", ids[2], "--store", url, "-o", str(path)]) == 0
    assert "completed" in path.read_text()
    assert load_flow(FLOWS / "deposit.yaml")  # the shipped flow is untouched


def test_a_mistyped_store_url_is_an_error_not_a_new_empty_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A check or a deploy against a store that is not there would pass on nothing.
    typo = tmp_path / "sesions.db"
    flow = str(FLOWS / "deposit.yaml")
    for argv in (
        ["flows", "check", flow, "--replay", "--store", f"sqlite:///{typo}"],
        ["flows", "deploy", flow, "--store", f"sqlite:///{typo}"],
        ["sessions", "show", "0" * 32, "--store", f"sqlite:///{typo}"],
        ["reconcile", "--store", f"sqlite:///{typo}"],
        ["flows", "check", flow, "--replay", "--store", "memory://"],
    ):
        assert main(argv) != 0, argv
        err = capsys.readouterr().err
        assert "no store at" in err or "holds nothing to read" in err, (argv, err)
    assert not typo.exists()


@pytest.mark.parametrize("sample", ["0", "-1", "two"])
def test_a_sample_of_no_sessions_is_a_usage_error(
    sample: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # --sample 0 passed having replayed nothing; a negative one ended in a traceback.
    flow = str(FLOWS / "deposit.yaml")
    argv = ["flows", "check", flow, "--replay", "--store", f"sqlite:///{tmp_path}/s.db"]
    with pytest.raises(SystemExit) as usage:
        main([*argv, "--sample", sample])
    assert usage.value.code == 2
    assert "--sample" in capsys.readouterr().err
