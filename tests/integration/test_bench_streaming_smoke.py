"""The streaming benchmark still runs end to end (tiny load; no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from selective_autonomy.traces.datasets import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.mark.timeout(300)
def test_streaming_benchmark_quick_run(tmp_path: Path) -> None:
    out, png = tmp_path / "streaming.json", tmp_path / "streaming.png"
    done = subprocess.run(
        [sys.executable, "-m", "bench.streaming", "--quick", "--out", str(out), "--png", str(png)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert png.stat().st_size > 0
    assert set(results["pipelines"]) == {"raw", "passthrough", "decide"}
    for name, pipeline in results["pipelines"].items():
        for phase in pipeline["phases"]:
            assert phase["sent"] > 0, (name, phase)
            assert phase["received"] == phase["sent"], (name, phase)
            assert phase["p50_ms"] is not None
    decide = results["pipelines"]["decide"]
    outputs = decide["phases"][0]["outputs_by_topic"]
    assert any(topic.startswith("actions.executed") for topic in outputs)
    assert any(topic.startswith("operator.deferrals") for topic in outputs)
    assert results["tuning"]["faust_default_run"]["worker_reports"][0]["fetch_wait_ms_seen"] == 1500
    assert [run["partitions"] for run in results["scaling"]] == [1]
    assert "decide_vs_passthrough" in results["summary"]
    # The runtime metrics the benchmark reads: batch timing and the fetch wait in effect.
    report = decide["worker_reports"][0]
    assert report["batches"]["events"] == report["events"] > 0
    assert report["fetch_wait_ms_seen"] == 10
    for phase in decide["phases"]:
        assert phase["worker_cpu_ms_per_event"] > 0
        assert phase["worker_memory"]["worker0"]["rss_mb"] > 0
