"""`selauto worker` serves Prometheus text on its health port: a real worker process on the test
broker decides a few states, then a plain HTTP GET of /metrics (what `curl :6066/metrics` does, and
what Prometheus scrapes) returns the decide metrics."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from selective_autonomy.config import Settings
from selective_autonomy.streams.producer import EventProducer
from tests.integration.reliability.helpers import WorkerProcess, decided_count, install_models, ui_state

pytestmark = pytest.mark.integration

OPENMETRICS = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"


@pytest.fixture
def worker(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[WorkerProcess]:
    settings = make_settings(partitions=2).model_copy(update={"models_dir": tmp_path / "models"})
    install_models(settings.models_dir)
    process = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        yield process
    finally:
        process.kill()


def get(port: int, path: str, accept: str | None = None) -> tuple[str, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.headers["Content-Type"], response.read().decode()


def test_a_running_worker_serves_its_decide_metrics_on_the_health_port(worker: WorkerProcess) -> None:
    worker.wait_until(lambda w: w.healthz() is not None, 90, "the health port")
    # retail is selective (executes), desk copilot (defers), lab logging (records).
    states = [ui_state(f"m{i}", 0, cluster) for i, cluster in enumerate(["retail", "retail", "desk", "lab"])]
    with EventProducer(worker.settings) as producer:
        for state in states:
            producer.send(worker.settings.topics.ui_state, state, key=state.session_id)
    worker.wait_until(lambda w: decided_count(w) >= len(states), 90, f"{len(states)} decisions")

    content_type, text = get(worker.health_port, "/metrics")
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    decisions = {
        dict(labels)["outcome"]: v for (name, labels), v in samples.items() if name == "selauto_decisions_total"
    }
    assert decisions == {"execute": 2, "defer": 1, "record": 1}
    assert samples[("selauto_events_total", ())] == len(states)
    deferrals = [dict(labels) for (name, labels), _ in samples.items() if name == "selauto_deferrals_total"]
    assert deferrals == [{"process": "billing", "reason": "copilot_stage"}]
    latency = {
        dict(labels)["outcome"]: v
        for (name, labels), v in samples.items()
        if name == "selauto_decision_latency_milliseconds_count"
    }
    assert latency == {"execute": 2, "defer": 1, "record": 1}
    buckets = [
        (float(dict(labels)["le"]), v)
        for (name, labels), v in samples.items()
        if name == "selauto_decision_latency_milliseconds_bucket" and dict(labels)["outcome"] == "execute"
    ]
    assert max(buckets) == (float("inf"), 2) and buckets == sorted(buckets), "a cumulative histogram"
    assert samples[("selauto_automation_rate", ())] == pytest.approx(2 / 3)
    assert {
        dict(labels)["cluster"] for (name, labels), _ in samples.items() if name == "selauto_stage_demotions_total"
    } == {
        "retail",
        "capped",
        "desk",
        "lab",
        "*",
    }
    # Prometheus asks for OpenMetrics; the health pages are still there.
    content_type, text = get(worker.health_port, "/metrics", OPENMETRICS)
    assert content_type.startswith("application/openmetrics-text") and text.rstrip().endswith("# EOF")
    assert worker.ready()
