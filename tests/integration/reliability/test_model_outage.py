"""An inference server that stops answering never stalls the worker: a real ``selauto worker`` with an
LLM policy served by a stand-in OpenAI-compatible completions server (written from vLLM's API
reference: ``POST /v1/completions`` with ``prompt``, ``n`` and ``logprobs``) that hangs mid-replay.

While it hangs every state is deferred as ``model_unavailable`` within the model deadline (not the
HTTP client's much longer timeout), the worker keeps its partitions (no restart, no rebalance), and
once the server answers again the steps run unattended again. Prints per-phase latencies.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request

from selective_autonomy.config import Settings
from selective_autonomy.edges.standin import serve_in_thread
from selective_autonomy.inference.artefact import ArtefactMeta, write_meta
from selective_autonomy.inference.llm.prompts import PROMPT_FORMAT
from selective_autonomy.inference.registry import ModelRegistry, ServicePointer
from selective_autonomy.inference.thresholds import Thresholds
from selective_autonomy.schemas.event_parts import ActionTier
from selective_autonomy.streams.producer import EventProducer

from .helpers import CLUSTERS, PROCESS, STAGES, TopicCollector, WorkerProcess, ui_state

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEADLINE_S = 1.0
CLIENT_TIMEOUT_S = 30.0
ANSWER = '{"action_type":"lookup_order","arguments":{"order_id":"A1"}}'
PER_PHASE = 30


class HangingCompletions:
    """Answers every prompt with one confident action, or holds every request while ``hung``."""

    def __init__(self) -> None:
        self.hung = threading.Event()
        self.requests = 0
        self.held = 0  # requests waiting for the server to answer again
        self.app = FastAPI()
        self.app.post("/v1/completions")(self.completions)

    async def completions(self, request: Request) -> dict[str, Any]:
        body = await request.json()
        self.requests += 1
        self.held += 1
        while self.hung.is_set():
            await asyncio.sleep(0.05)
        self.held -= 1
        choice = {"text": ANSWER, "logprobs": {"tokens": ["t"], "token_logprobs": [-0.01]}, "finish_reason": "stop"}
        count = len(body["prompt"]) * body.get("n", 1)
        return {"choices": [dict(choice, index=i) for i in range(count)]}


def install_llm_policy(models_dir: Path) -> None:
    registry = ModelRegistry(models_dir)
    registry.save_schema(PROCESS)
    meta = ArtefactMeta(
        kind="policy-llm",
        version="policy-llm-standin",
        process_id=PROCESS.process_id,
        schema_hash=PROCESS.schema_hash(),
        params={"prompt_format": PROMPT_FORMAT, "max_new_tokens": 64},
    )
    write_meta(registry.process_dir(PROCESS.process_id) / "policy" / meta.version, meta)
    thresholds = Thresholds(values={f"billing/{c}/{t.value}": 0.5 for c in CLUSTERS for t in ActionTier})
    registry.publish(
        PROCESS.process_id, ServicePointer(policy=f"policy/{meta.version}", thresholds=thresholds, stages=STAGES)
    )


@pytest.mark.timeout(300)
def test_a_hung_inference_server_costs_deferrals_within_the_deadline_never_a_stall(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(partitions=2).model_copy(update={"models_dir": tmp_path / "models"})
    install_llm_policy(settings.models_dir)
    server = HangingCompletions()
    with serve_in_thread(server.app) as url:
        worker = WorkerProcess(
            settings,
            tmp_path / "worker.log",
            env={
                "SELAUTO_INFERENCE__URL": f"{url}/v1",
                "SELAUTO_INFERENCE__TIMEOUT_S": str(CLIENT_TIMEOUT_S),
                "SELAUTO_INFERENCE__MAX_RETRIES": "0",
                "SELAUTO_WORKER__MODEL_DEADLINE_S": str(DEADLINE_S),
            },
        ).start()
        try:
            worker.wait_until(lambda w: w.ready(), 90, "readiness")
            latencies: dict[str, list[float]] = {}
            kinds: dict[str, set[str]] = {}
            readiness: dict[str, tuple[int, dict[str, Any]] | None] = {}
            with TopicCollector(settings) as collector, EventProducer(settings) as producer:
                # One producer, warmed up: its first send fetches metadata, which is no decision latency.
                warmup = ui_state("warmup", 0, cluster="retail")
                producer.send(settings.topics.ui_state, warmup, key=warmup.session_id)
                producer.flush()
                collector.wait_for(lambda c: c.covers([("warmup", 0)]), 60, "the warm-up state")
                for phase in ("answering", "hung", "answering again"):
                    if phase == "hung":
                        server.hung.set()
                    elif server.hung.is_set():
                        server.hung.clear()
                        # The call the server held answers first; until then the worker defers at once.
                        while server.held:
                            time.sleep(0.05)
                        time.sleep(0.2)
                    prefix = phase.replace(" ", "-")
                    sent: dict[tuple[str, int], float] = {}
                    for i in range(PER_PHASE):
                        state = ui_state(f"{prefix}-{i:03d}", 0, cluster="retail")
                        sent[(state.session_id, 0)] = state.timestamp.timestamp()
                        producer.send(settings.topics.ui_state, state, key=state.session_id)
                        producer.flush()
                        time.sleep(0.05)  # states arrive over 1.5 s, in several batches
                    collector.wait_for(lambda c, keys=sent: c.covers(keys), 60, f"decisions while {phase}")
                    records = [r for r in collector.snapshot()[0] if (r.session_id, r.state_version) in sent]
                    readiness[phase] = worker.readyz()
                    latencies[phase] = [r.at - sent[(r.session_id, r.state_version)] for r in records]
                    kinds[phase] = {r.kind for r in records}
            metrics = worker.metrics()
        finally:
            server.hung.clear()
            worker.stop()
    assert worker.returncode == 0
    assert kinds == {"answering": {"executed"}, "hung": {"deferred"}, "answering again": {"executed"}}
    assert metrics["model_timeouts"] == PER_PHASE
    # Readiness says the models hang (the call still runs) and stays 200: the worker keeps deferring.
    overdue = {phase: (answer[0], answer[1]["model_call_overdue"]) for phase, answer in readiness.items() if answer}
    assert overdue == {"answering": (200, False), "hung": (200, True), "answering again": (200, False)}
    assert metrics["deferral_reasons"] == {"model_unavailable": PER_PHASE}
    # The deadline bounded the wait, not the HTTP client's timeout (a hung call holds only its thread).
    assert max(latencies["hung"]) < CLIENT_TIMEOUT_S
    print(
        f"\nmodel outage (deadline {DEADLINE_S:.1f} s): "
        + "; ".join(
            f"{phase}: {len(values)} states, latency p50 {statistics.median(values) * 1000:.0f} ms, "
            f"max {max(values) * 1000:.0f} ms"
            for phase, values in latencies.items()
        )
    )
