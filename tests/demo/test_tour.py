"""The README's first command runs this tour; CI runs it too."""

from __future__ import annotations

from pathlib import Path

import pytest

from fieldguard.demo.__main__ import main


def test_demo_tour_holds_every_expectation(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--audit", str(tmp_path / "audit.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "all expectations held" in out and "FAILED" not in out
    assert (tmp_path / "audit.jsonl").read_text().count("\n") >= 6
