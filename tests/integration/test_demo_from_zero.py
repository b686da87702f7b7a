"""`selauto demo --from-zero` on a short slice: from a schema and an empty models directory to copilot
(and selective) through the worker alone, with the first policy trained from the recorded traces."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from selective_autonomy.cli import app
from selective_autonomy.inference.artefact import read_meta

pytestmark = pytest.mark.integration

ORDER = ["logging", "first_policy", "copilot", "first_certificate", "selective"]
SESSIONS = "900"
"""The first 900 cases of the log (330 days, a day every 0.25 s): the default 300 complete cases for the
first policy (it went into service at sessions 357 and 371 in two runs), then 100 to 150 copilot
sessions for a certificate, then selective (sessions 507 and 484). About 90 s. A first policy from
fewer cases (100) certified nothing on 1,800 copilot answers: too weak for the target."""


@pytest.mark.slow
def test_from_zero_records_learns_its_first_policy_and_moves_up_the_stages(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "demo",
            "--from-zero",
            "--limit-cases",
            SESSIONS,
            "--day-seconds",
            "0.25",
            "--concurrency",
            "30",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    out = tmp_path / "helpdesk-from-zero"
    report = json.loads((out / "report.json").read_text())
    assert (out / "report.md").read_text().startswith("# From zero to selective")
    assert (out / "operator_share.png").stat().st_size > 0

    # Every session ran to its end, every step decided once, nothing stalled.
    replay = report["replay"]
    assert replay["sessions"] == replay["sessions_completed"] == report["cases"] == int(SESSIONS)
    assert replay["stalled_sessions"] == 0
    assert replay["steps_executed"] + replay["steps_deferred"] == replay["steps"]

    # The stages came in order: logging, then the loop's first policy, then copilot (then selective).
    entries = {e["milestone"]: e for e in report["timeline"]["entries"]}
    assert all(entries[m]["wall_s"] is not None for m in ORDER), entries
    for unit in ("wall_s", "session", "log_day"):
        assert [entries[m][unit] for m in ORDER] == sorted(entries[m][unit] for m in ORDER), (unit, entries)
    assert entries["logging"]["session"] == 1
    assert entries["selective"]["session"] < int(SESSIONS)
    # Only the selective stage ran steps unattended, and the precision line says how they went.
    by_stage = report["timeline"]["by_stage"]
    assert by_stage["logging"]["executed"] == by_stage["copilot"]["executed"] == 0
    assert by_stage["selective"]["executed"] == replay["steps_executed"] > 0
    assert replay["precision"] is not None
    [line] = [line for line in result.output.splitlines() if line.startswith("precision of executed steps: certified")]
    assert "realised" in line and ("agree" in line or "DISAGREE" in line)
    shares = report["timeline"]["share"]
    assert shares[0]["operator_share"] == 1.0 and min(p["operator_share"] for p in shares) < 1.0

    # The first policy was trained by the learning loop from the recorded traces, nobody deployed it.
    first = report["first_policy"]
    assert first is not None and first["recorded_by_loop"]
    assert first["meta"]["kind"] == "policy-embedded" and first["meta"]["evaluated_to"] is None
    assert first["meta"]["train_cases"] >= 240 and "trace_top1" in first["meta"]["metrics"]  # 80% of >= 300
    assert report["service_changes"] == [
        "process_added by selauto-demo: from zero: a schema, no traces, no model (revision 1)"
    ]
    assert any(
        "logging -> copilot (first policy " in line and "recorded cases" in line for line in report["stage_history"]
    )
    [workdir] = re.findall(r"work dir (\S+)", result.output)
    models = Path(workdir) / "models"
    meta = read_meta(models / first["path"])
    assert meta.version == first["version"] and meta.train_cases == first["meta"]["train_cases"]
    history = json.loads((models / "helpdesk" / "history" / "1.json").read_text())
    assert history["policy"] is None  # the registration put nothing in service

    # The platform's closing screens were recorded (complete cases) and never decided.
    assert report["complete_cases"] >= 400 and report["recorded_states"] > replay["steps"]
    assert report["worker"]["skipped"]["ended"] > 0
