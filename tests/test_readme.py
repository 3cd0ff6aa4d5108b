"""The README's Python examples run as written (in a scratch folder with flows/ in it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import FLOWS, ROOT


def python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_the_readme_has_python_examples() -> None:
    assert len(python_blocks()) >= 2


def test_the_readme_examples_run_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "flows").symlink_to(FLOWS)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    for block in python_blocks():
        exec(compile(block, "README.md", "exec"), namespace)
    engine = namespace["engine"]
    session = namespace["session"]
    assert engine.get(session.session_id).status == "completed"  # type: ignore[attr-defined]
