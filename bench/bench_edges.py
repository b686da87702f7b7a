"""Benchmark of the BPM edges on the embedded broker, each figure against a baseline from the same run.

- ingest: signed-off single requests/s (httpx client, N concurrent, against `selauto ingest http` in its
  own process on loopback) and batch events/s, against the raw producer's records/s (batched, no
  per-record wait) and against acknowledged sends at the same concurrency (the per-request ack the
  webhook must wait for, without HTTP and validation);
- executor: actions/s from actions.executed to the stand-in platform (its own process) through the
  HTTP adapter, and through the in-memory adapter, against direct HTTP calls/s to the same platform
  at the same concurrency.

Counts and times are bounded. Baseline and measurement run back to back in each of ``--repeats``
rounds and the median ratio is reported, so load from other processes on the machine cancels out
as far as it can. Results go to bench/results/edges.json and edges.png.

    .venv/bin/python bench/bench_edges.py [--requests 2000] [--actions 1500] [--concurrency 16] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from selective_autonomy.config import ExecutorSettings, HttpAdapterSettings, HttpRoute, Settings, TopicSettings
from selective_autonomy.edges.executor.adapters import InMemoryPlatform
from selective_autonomy.edges.executor.runner import ExecutorRunner
from selective_autonomy.edges.executor.wiring import run_executor_until
from selective_autonomy.edges.publisher import AckingProducer
from selective_autonomy.schemas.event_parts import Action, ActionTier
from selective_autonomy.schemas.events import ActionExecuted, UIStateChanged, action_id_for
from selective_autonomy.schemas.process import ActionSpec, ArgumentSpec, ProcessSchema, UIField, ValueType
from selective_autonomy.streams.broker import EmbeddedBroker
from selective_autonomy.streams.producer import EventProducer
from selective_autonomy.streams.topics import ensure_topics

RESULTS = Path(__file__).parent / "results"
TOKEN = "bench-token-0123456789"
SCHEMA = ProcessSchema(
    process_id="billing",
    fields=[
        UIField(name="customer_id", required=True),
        UIField(name="plan", type=ValueType.enum, enum=["basic", "pro"]),
        UIField(name="open_invoices", type=ValueType.integer),
    ],
    controls=[ActionSpec(name="lookup_order", arguments=[ArgumentSpec(name="order_id")]), ActionSpec(name="refund")],
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready within {timeout_s} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fresh_settings(base: Settings, tmp: Path) -> Settings:
    suffix = uuid.uuid4().hex[:8]
    topics = TopicSettings(**{role: f"{name}.{suffix}" for role, name in TopicSettings().names().items()})
    settings = base.model_copy(update={"topics": topics, "app_id": f"bench-{suffix}", "data_dir": tmp / suffix})
    ensure_topics(settings)
    return settings


def state_body(i: int) -> dict[str, Any]:
    return {
        "session_id": f"s{i % 500}",
        "process_id": "billing",
        "business_cluster": "default",
        "state_version": i,
        "timestamp": "2026-03-02T09:00:00Z",
        "ui_state": {
            "fields": {"customer_id": f"C-{i}", "plan": "pro", "open_invoices": i % 7},
            "chat_tail": [{"speaker": "customer", "text": "Where is my order? It was due last week."}],
            "controls": ["lookup_order", "refund"],
            "recent_actions": [{"action_type": "lookup_order", "arguments": {"order_id": f"A{i}"}}],
        },
    }


async def closed_loop(
    count: int, concurrency: int, time_limit_s: float, call: Callable[[int], Awaitable[None]]
) -> dict[str, Any]:
    """``count`` calls by ``concurrency`` workers (stopping at ``time_limit_s``); throughput and latencies."""
    next_index = 0
    latencies: list[float] = []
    started = time.perf_counter()
    deadline = started + time_limit_s

    async def worker() -> None:
        nonlocal next_index
        while next_index < count and time.perf_counter() < deadline:
            index = next_index
            next_index += 1
            t0 = time.perf_counter()
            await call(index)
            latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "count": len(latencies),
        "seconds": round(elapsed, 3),
        "per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 2),
        "p95_ms": round(1000 * latencies[int(0.95 * (len(latencies) - 1))], 2),
    }


# -- ingest -----------------------------------------------------------------------------------


def raw_producer(settings: Settings, count: int) -> dict[str, Any]:
    events = [UIStateChanged.model_validate(state_body(i)) for i in range(count)]
    started = time.perf_counter()
    with EventProducer(settings) as producer:
        for event in events:
            producer.send(settings.topics.ui_state, event, key=event.session_id)
    elapsed = time.perf_counter() - started
    return {"count": count, "seconds": round(elapsed, 3), "per_s": round(count / elapsed, 1)}


def acked_producer(settings: Settings, count: int, concurrency: int, time_limit_s: float) -> dict[str, Any]:
    events = [UIStateChanged.model_validate(state_body(i)) for i in range(count)]

    async def main() -> dict[str, Any]:
        producer = AckingProducer(settings, timeout_s=5.0)
        producer.start()
        try:

            async def call(i: int) -> None:
                await producer.send(settings.topics.ui_state, events[i], events[i].session_id)

            for i in range(20):  # warm up: producer id, topic metadata, partition leaders
                await call(i)
            return await closed_loop(count, concurrency, time_limit_s, call)
        finally:
            producer.close()

    return asyncio.run(main())


class IngestServer:
    """`selauto ingest http` in its own process on a free loopback port."""

    def __init__(self, settings: Settings, models_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "SELAUTO_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
            "SELAUTO_KAFKA__PROFILE": "tansu",
            "SELAUTO_TOPICS__UI_STATE": settings.topics.ui_state,
            "SELAUTO_MODELS_DIR": str(models_dir),
            "SELAUTO_INGEST__TOKENS": json.dumps({"bench": TOKEN}),
        }
        command = [sys.executable, "-c", "from selective_autonomy.cli import app; app()", "ingest", "http"]
        self.process = subprocess.Popen(
            [*command, "--port", str(self.port), "--loglevel", "warning"], env=env, stdout=subprocess.DEVNULL
        )
        wait_ready(f"{self.url}/healthz", self.process)

    def close(self) -> None:
        stop(self.process)


def ingest_http(server: IngestServer, first: int, count: int, concurrency: int, time_limit_s: float) -> dict[str, Any]:
    """Single requests, then batches of 100, against a running ingest server; state versions from ``first``."""
    bodies = [json.dumps(state_body(first + i)).encode() for i in range(count)]
    batch_size = 100
    batches = [
        json.dumps({"events": [state_body(first + count + b * batch_size + j) for j in range(batch_size)]}).encode()
        for b in range(max(1, count // batch_size))
    ]
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    async def main() -> tuple[dict[str, Any], dict[str, Any]]:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30.0) as client:
            for i in range(20):  # warm up: connections, schema cache, producer metadata
                await client.post("/v1/ui-state", content=bodies[i], headers=headers)

            async def single(i: int) -> None:
                answer = await client.post("/v1/ui-state", content=bodies[i], headers=headers)
                if answer.status_code != 202:
                    raise RuntimeError(f"{answer.status_code} {answer.text}")

            async def batch(i: int) -> None:
                answer = await client.post("/v1/ui-state:batch", content=batches[i], headers=headers)
                if answer.status_code != 202:
                    raise RuntimeError(f"{answer.status_code} {answer.text}")

            cpu_before = cpu_seconds(server.process.pid)
            singles = await closed_loop(count, concurrency, time_limit_s, single)
            singles["server_cpu_ms_per_request"] = round(
                1000 * (cpu_seconds(server.process.pid) - cpu_before) / singles["count"], 3
            )
            cpu_before = cpu_seconds(server.process.pid)
            batched = await closed_loop(len(batches), max(1, concurrency // 4), time_limit_s, batch)
            batched["server_cpu_ms_per_event"] = round(
                1000 * (cpu_seconds(server.process.pid) - cpu_before) / (batched["count"] * batch_size), 3
            )
            batched["events_per_s"] = round(batched["per_s"] * batch_size, 1)
            batched["batch_size"] = batch_size
            return singles, batched

    singles, batched = asyncio.run(main())
    return {"single": singles, "batch": batched}


# -- executor ---------------------------------------------------------------------------------


class StandIn:
    """The stand-in platform in its own process on a free loopback port; the context value is its URL."""

    def __enter__(self) -> str:
        port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "selective_autonomy.edges.standin", "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        wait_ready(f"{url}/healthz", self.process)
        return url

    def __exit__(self, *exc: object) -> None:
        stop(self.process)


def executed(i: int) -> ActionExecuted:
    session = f"s{i % 200}"
    action = Action(action_type="lookup_order", arguments={"order_id": f"A{i}"})
    return ActionExecuted(
        action_id=action_id_for(session, i, action),
        event_id=f"e{i}",
        session_id=session,
        process_id="billing",
        business_cluster="default",
        state_version=i,
        action=action,
        tier=ActionTier.auto,
        critic_score=0.97,
    )


def direct_http(url: str, repeat: int, count: int, concurrency: int, time_limit_s: float) -> dict[str, Any]:
    actions = [executed(1_000_000 * (repeat + 1) + i) for i in range(count)]

    async def main() -> dict[str, Any]:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=10.0) as client:

            async def call(i: int) -> None:
                a = actions[i]
                answer = await client.post(
                    f"/sessions/{a.session_id}/actions/{a.action.action_type}",
                    json={"action_id": a.action_id, "session_id": a.session_id, "arguments": a.action.arguments},
                    headers={"Idempotency-Key": a.action_id},
                )
                answer.raise_for_status()

            return await closed_loop(count, concurrency, time_limit_s, call)

    return asyncio.run(main())


def executor_run(settings: Settings, count: int, timeout_s: float, adapter: Any = None) -> dict[str, Any]:
    with EventProducer(settings) as producer:
        for i in range(count):
            event = executed(i)
            producer.send(settings.topics.actions_executed, event, key=event.session_id)

    def done(runner: ExecutorRunner) -> bool:
        m = runner.executor.metrics
        return m.applied + m.duplicates + m.failed + m.unknown >= count

    started = time.perf_counter()
    runner = run_executor_until(settings, done, timeout_s=timeout_s, adapter=adapter, health=False)
    wall = time.perf_counter() - started
    state = runner.state
    assert state.first_batch_at is not None and state.last_batch_at is not None
    busy = state.last_batch_at - state.first_batch_at
    metrics = runner.executor.metrics
    return {
        "count": count,
        "applied": metrics.applied,
        "failed": metrics.failed,
        "batches": state.batches,
        "seconds": round(busy, 3),
        "per_s": round(count / busy, 1),
        "wall_s_incl_group_join": round(wall, 3),
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ratios = result["ratios"]
    labels = list(ratios)
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.barh(labels, [ratios[k] for k in labels], color="#4c72b0")
    ax.axvline(1.0, color="grey", lw=0.8, ls="--")
    for y, key in enumerate(labels):
        ax.text(ratios[key], y, f" {ratios[key]:.2f}", va="center", fontsize=8)
    ax.set_xlabel("throughput / baseline measured in the same run")
    ax.set_title(f"BPM edges on the embedded broker ({result['machine']['cpus']} CPUs, median ratios)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def median_of(runs: list[dict[str, Any]], path: tuple[str, ...]) -> float:
    values = []
    for run in runs:
        value: Any = run
        for key in path:
            value = value[key]
        values.append(float(value))
    return round(statistics.median(values), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="single ingest requests per repeat (bounded)")
    parser.add_argument("--actions", type=int, default=1500, help="actions through the executor per repeat (bounded)")
    parser.add_argument("--concurrency", type=int, default=16, help="in-flight requests / sessions")
    parser.add_argument("--repeats", type=int, default=3, help="baseline and measurement alternate this many times")
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per measured phase at most")
    parser.add_argument("--out", type=Path, default=RESULTS / "edges.json")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="selauto-bench-edges-"))
    models = tmp / "models"
    (models / "billing").mkdir(parents=True)
    SCHEMA.save(models / "billing" / "schema.yaml")
    result: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "parameters": vars(args) | {"out": str(args.out)},
        "note": "client, servers and broker share this machine; each ratio is taken within one repeat "
        "(baseline and measurement back to back) and the median over repeats is reported",
    }
    ingest_runs: list[dict[str, Any]] = []
    executor_runs: list[dict[str, Any]] = []
    with EmbeddedBroker() as broker:
        base = Settings(kafka=broker.kafka_settings())
        ingest_settings = fresh_settings(base, tmp)
        server = IngestServer(ingest_settings, models)
        try:
            for repeat in range(args.repeats):
                print(f"ingest, repeat {repeat + 1}/{args.repeats}...", flush=True)
                raw = raw_producer(fresh_settings(base, tmp), max(args.requests, 10_000))
                acked = acked_producer(fresh_settings(base, tmp), args.requests, args.concurrency, args.time_limit)
                http = ingest_http(
                    server, repeat * 10 * args.requests, args.requests, args.concurrency, args.time_limit
                )
                ingest_runs.append(
                    {
                        "baseline_raw_producer": raw,
                        "baseline_acked_sends": acked,
                        "http_single": http["single"],
                        "http_batch": http["batch"],
                        "ratios": {
                            "ingest single / raw producer": round(http["single"]["per_s"] / raw["per_s"], 4),
                            "ingest single / acked sends": round(http["single"]["per_s"] / acked["per_s"], 4),
                            "ingest batch events / raw producer": round(
                                http["batch"]["events_per_s"] / raw["per_s"], 4
                            ),
                        },
                    }
                )
        finally:
            server.close()

        for repeat in range(args.repeats):
            print(f"executor, repeat {repeat + 1}/{args.repeats}...", flush=True)
            # A fresh platform for every phase: its request log grows, and must not slow the later phase.
            with StandIn() as url:
                direct = direct_http(url, repeat, args.actions, args.concurrency, args.time_limit)
            with StandIn() as url:
                executor_settings = ExecutorSettings(
                    max_in_flight=args.concurrency,
                    http=HttpAdapterSettings(
                        base_url=url, routes={"*": HttpRoute(url="/sessions/{session_id}/actions/{action_type}")}
                    ),
                )
                over_http = executor_run(
                    fresh_settings(base, tmp).model_copy(update={"executor": executor_settings}),
                    args.actions,
                    timeout_s=args.time_limit + 60,
                )
            in_memory = executor_run(
                fresh_settings(base, tmp).model_copy(update={"executor": executor_settings}),
                args.actions,
                timeout_s=args.time_limit + 60,
                adapter=InMemoryPlatform(),
            )
            executor_runs.append(
                {
                    "baseline_direct_http": direct,
                    "http_adapter": over_http,
                    "in_memory_adapter": in_memory,
                    "ratios": {
                        "executor http / direct http": round(over_http["per_s"] / direct["per_s"], 4),
                        "executor in-memory / direct http": round(in_memory["per_s"] / direct["per_s"], 4),
                    },
                }
            )
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["ingest"] = {
        "median_per_s": {
            "raw_producer_records": median_of(ingest_runs, ("baseline_raw_producer", "per_s")),
            "acked_sends": median_of(ingest_runs, ("baseline_acked_sends", "per_s")),
            "http_single_requests": median_of(ingest_runs, ("http_single", "per_s")),
            "http_batch_events": median_of(ingest_runs, ("http_batch", "events_per_s")),
        },
        "median_http_single_p50_ms": median_of(ingest_runs, ("http_single", "p50_ms")),
        "median_http_single_p95_ms": median_of(ingest_runs, ("http_single", "p95_ms")),
        "median_server_cpu_ms_per_request": median_of(ingest_runs, ("http_single", "server_cpu_ms_per_request")),
        "median_server_cpu_ms_per_batched_event": median_of(ingest_runs, ("http_batch", "server_cpu_ms_per_event")),
        "runs": ingest_runs,
    }
    result["executor"] = {
        "median_per_s": {
            "direct_http_calls": median_of(executor_runs, ("baseline_direct_http", "per_s")),
            "executor_http_actions": median_of(executor_runs, ("http_adapter", "per_s")),
            "executor_in_memory_actions": median_of(executor_runs, ("in_memory_adapter", "per_s")),
        },
        "runs": executor_runs,
    }
    result["ratios"] = {name: median_of(ingest_runs, ("ratios", name)) for name in ingest_runs[0]["ratios"]} | {
        name: median_of(executor_runs, ("ratios", name)) for name in executor_runs[0]["ratios"]
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.out.with_suffix(".png"))
    summary = {
        "ingest": {k: v for k, v in result["ingest"].items() if k != "runs"},
        "executor": result["executor"]["median_per_s"],
        "ratios": result["ratios"],
        "load_average": [result["machine"]["load_average_at_start"], result["machine"]["load_average_at_end"]],
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
