"""`selauto sim` commands that need no broker: ABCD generation, and replay's argument checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from selective_autonomy.simulator.cli import sim_app
from selective_autonomy.traces import datasets
from selective_autonomy.traces.format import read_cases


def test_abcd_writes_cases(tmp_path: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        datasets.abcd_data_dir(shared_data)
    except FileNotFoundError as error:
        pytest.skip(f"ABCD not available here: {error}")
    out = tmp_path / "abcd.jsonl.gz"
    monkeypatch.setenv("SELAUTO_DATASETS_DIR", str(shared_data))  # the default ABCD folder comes from the settings
    result = CliRunner().invoke(sim_app, ["abcd", "--out", str(out), "--cases", "25", "--seed", "4"])
    assert result.exit_code == 0, result.output
    assert "cases=25" in result.output
    cases = list(read_cases(out))
    assert len(cases) == 25 and all(c.process_id == "abcd" for c in cases)


def test_replay_needs_exactly_one_source(tmp_path: Path) -> None:
    result = CliRunner().invoke(sim_app, ["replay"])
    assert result.exit_code != 0 and "either a cases JSONL file or --log" in result.output
