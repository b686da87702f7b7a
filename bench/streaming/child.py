"""A faust app in its own OS process, started the way ``selauto worker`` starts one: the decide
worker (``build_worker``) or the pass-through agent. It reports its assignments and, when it stops,
its counters over stdout (lines starting with :data:`MARK`).

Run as ``python -m bench.streaming.child SPEC_JSON``; :class:`WorkerChild` is the parent's handle.
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.streaming.settings import REPO_ROOT

MARK = "BENCH "
"""Prefix of the lines a worker child prints for the parent (JSON after it)."""


def settings_for(spec: dict[str, Any]) -> Any:
    from selective_autonomy.config import BrokerProfile, KafkaSettings, Settings, TopicSettings, WorkerSettings

    return Settings(
        kafka=KafkaSettings(bootstrap_servers=spec["bootstrap"], profile=BrokerProfile.tansu),
        topics=TopicSettings(**spec["topics"]),
        app_id=spec["app_id"],
        data_dir=Path(spec["data_dir"]),
        models_dir=Path(spec["models_dir"]),
        worker=WorkerSettings(
            batch_size=spec["batch_size"],
            batch_window_s=spec["batch_window_s"],
            feedback=False,
            learning=False,
            **spec.get("worker", {}),
        ),
    )


def tweaks_for_spec(spec: dict[str, Any], settings: Any) -> Any:
    """The profile's tweaks with the spec's replacements; ``fetch_wait_ms`` -1 is faust's own
    fixed 1.5 s fetch wait."""
    from selective_autonomy.streams.kafka_config import tweaks_for

    changes = dict(spec.get("tweaks", {}))
    fetch_wait_ms = spec.get("fetch_wait_ms")
    if fetch_wait_ms is not None:
        changes["consumer_fetch_wait_ms"] = None if fetch_wait_ms < 0 else fetch_wait_ms
    return dataclasses.replace(tweaks_for(settings.kafka), **changes)


def passthrough_app(settings: Any, tweaks: Any, output_topic: str, app_options: dict[str, Any]) -> tuple[Any, Any]:
    """A faust agent that writes every ``ui.state`` record unchanged to ``output_topic``, and a
    function returning its counters."""
    from selective_autonomy.streams.app import build_app, raw_topic

    app = build_app(settings, tweaks=tweaks, **app_options)
    source = raw_topic(app, settings.topics.ui_state)
    output = raw_topic(app, output_topic)
    counted = {"events": 0}

    @app.agent(source, name="passthrough")
    async def passthrough(stream: Any) -> None:
        async for event in stream.events():
            counted["events"] += 1
            await output.send(key=event.key, value=event.value)

    return app, lambda: dict(counted)


def decide_app(settings: Any, tweaks: Any, app_options: dict[str, Any]) -> tuple[Any, Callable[[], dict[str, Any]]]:
    """The decide worker as ``selauto worker`` builds it (its tracer provider and meters, set as the
    process's, without the web server), and a function returning its counters."""
    from opentelemetry import metrics, trace

    from selective_autonomy.agents.worker import build_worker
    from selective_autonomy.streams.meters import process_meters
    from selective_autonomy.streams.tracing import process_tracer_provider

    telemetry = settings.telemetry
    provider = process_tracer_provider(telemetry)
    trace.set_tracer_provider(provider)
    meters = process_meters(telemetry)
    metrics.set_meter_provider(meters.provider)
    worker = build_worker(
        settings, tracer_provider=provider, meter_provider=meters.provider, app_options=app_options, tweaks=tweaks
    )

    def final() -> dict[str, Any]:
        m = worker.metrics
        return {
            "models": worker.models.versions(),
            "load_errors": worker.models.load_errors,
            "events": m.events,
            "outcomes": dict(m.outcomes),
            "skipped": dict(m.skipped),
            "dead_letters": m.dead_letters,
            "deferral_reasons": dict(m.deferral_reasons),
            "batches": m.batch_timing.snapshot(),
        }

    return worker.app, final


def child_main(spec: dict[str, Any]) -> None:
    """One faust app: the pass-through agent or the decide worker; stops on SIGTERM."""
    from selective_autonomy.streams.runner import run_app_until

    settings = settings_for(spec)
    tweaks = tweaks_for_spec(spec, settings)
    if spec["kind"] == "decide":
        app, final = decide_app(settings, tweaks, spec["app_options"])
    else:
        app, final = passthrough_app(settings, tweaks, spec["passthrough_out"], spec["app_options"])
    ui_state = settings.topics.ui_state

    @app.on_partitions_assigned.connect  # type: ignore[misc]
    async def on_assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        count = sum(1 for tp in assigned if tp.topic == ui_state)
        print(MARK + json.dumps({"event": "assigned", "partitions": count}), flush=True)

    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__("now", True))
    run_app_until(app, lambda: stop["now"], timeout_s=24 * 3600)
    usage = os.times()
    report = final()
    report.update(event="stopped", cpu_s=round(usage.user + usage.system, 2), fetch_wait_ms_seen=app.fetch_wait_ms())
    print(MARK + json.dumps(report, default=str), flush=True)


class WorkerChild:
    """A faust app in its own process (this module run as a script); reports over stdout."""

    def __init__(self, spec: dict[str, Any], log_path: Path) -> None:
        self.spec = spec
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.streaming.child", json.dumps(spec)],
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.assigned: int | None = None
        self.assignments = 0
        self.last_change = time.monotonic()
        self.final: dict[str, Any] | None = None
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode(errors="replace").strip()
            if not line.startswith(MARK):
                continue
            message = json.loads(line[len(MARK) :])
            if message.get("event") == "assigned":
                self.assigned = int(message["partitions"])
                self.assignments += 1
                self.last_change = time.monotonic()
            elif message.get("event") == "stopped":
                self.final = message

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout_s: float = 20.0) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._reader.join(timeout=5)
        self._log.close()

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def wait_assigned(
    children: Sequence[WorkerChild], partitions: int, settle_s: float = 2.0, timeout_s: float = 90.0
) -> float:
    """Wait until the children together hold every input partition and nothing moved for ``settle_s``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        for child in children:
            if not child.alive():
                raise RuntimeError(f"worker exited with {child.process.returncode}:\n{child.log_tail()}")
        reported = all(child.assigned is not None for child in children)
        total = sum(child.assigned or 0 for child in children)
        settled = all(time.monotonic() - child.last_change > settle_s for child in children)
        if reported and total == partitions and settled:
            return time.monotonic() - started
        time.sleep(0.05)
    states = [(child.assigned, child.assignments) for child in children]
    raise RuntimeError(f"partitions not assigned within {timeout_s} s: {states}\n{children[0].log_tail()}")


if __name__ == "__main__":
    child_main(json.loads(sys.argv[1]))
