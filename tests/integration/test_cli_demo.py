"""`selauto demo` and `selauto broker` as a new user runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from selective_autonomy.cli import app

pytestmark = pytest.mark.integration


def test_demo_replays_a_log_slice_end_to_end() -> None:
    result = CliRunner().invoke(app, ["demo", "--limit-cases", "40"])
    assert result.exit_code == 0, result.output
    assert "cases: 40" in result.output
    assert "0 dead letters" in result.output


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
