"""`selauto demo` and `selauto broker` as a new user runs them (the demo on a short slice)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from selective_autonomy.cli import app

pytestmark = pytest.mark.integration


@pytest.mark.slow
def test_demo_runs_the_full_loop_on_a_short_slice(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["demo", "--limit-cases", "700", "--policy", "ngram", "--concurrency", "30", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "helpdesk" / "report.json").read_text())
    assert report["cases"] == {"train": 280, "copilot": 210, "future": 210}
    copilot, selective = report["copilot"], report["selective"]
    assert copilot["stalled_sessions"] == selective["stalled_sessions"] == 0
    assert copilot["feedback"] == copilot["steps"] > 0
    assert selective["steps_executed"] + selective["steps_deferred"] == selective["steps"]
    assert (tmp_path / "helpdesk" / "report.md").read_text().startswith("# Selective autonomy")
    assert (tmp_path / "helpdesk" / "time_to_autonomy.png").stat().st_size > 0
    assert "sessions automated end to end" in result.output
    # Certified and realised precision side by side, and whether they agree.
    [line] = [line for line in result.output.splitlines() if line.startswith("precision of executed steps: certified")]
    assert "realised" in line and ("agree" in line or "DISAGREE" in line)


def test_publish_and_consume_a_log_slice(tmp_path: Path) -> None:
    from selective_autonomy.config import Settings
    from selective_autonomy.demo.publish_log import publish_and_consume
    from selective_autonomy.streams.broker import EmbeddedBroker
    from selective_autonomy.streams.topics import ensure_topics
    from selective_autonomy.traces.datasets import helpdesk_log_path

    with EmbeddedBroker() as broker:
        settings = Settings(kafka=broker.kafka_settings(), data_dir=tmp_path)
        ensure_topics(settings)
        report = publish_and_consume(settings, helpdesk_log_path(), "helpdesk", limit_cases=40)
    assert report.cases == report.sessions_seen == 40
    assert report.events_consumed == report.events_published
    assert report.dead_letters == 0


def test_broker_command_starts_prints_address_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "selective_autonomy.cli", "broker", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if line.startswith("topics:"):
                break
        assert any(line.startswith("broker ready: bootstrap servers 127.0.0.1:") for line in lines), lines
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        assert "broker stopped" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
