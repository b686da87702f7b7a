"""Serving the LLM policy and critic of several processes: one vLLM server holding the base with every
process's LoRA adapters, against one server per model (each adapter merged into its own copy).

Usage: python -m bench.bench_lora_serving --base artifacts/base/gemma-3-270m
       [--logs helpdesk bpi2012w sgd-dev] [--batches 1 32] [--out bench/results/lora_serving.json]

Per process (the largest of each log) a policy and a critic adapter are trained on the base for a
few steps (``--train-steps``; this measures serving, not accuracy: the adapters are real, their
answers untuned). A decision is what the decide agent asks of the LLM path for one state: the
policy's greedy proposal, then the critic's score of it. Measured, for each server layout, on the
same states:

* ``shared`` - one server, the base plus all 2 x N adapters (``--lora-modules``, LoRA on);
  per process in turn (``sequential``), then all processes at once, one thread each, as workers
  of different processes would (``concurrent``); and the time to load a new adapter into the
  running server (``hot_load_s``: unload one, load it back through the client, as a promotion does).
* ``per_model`` - two servers per process (merged policy, merged critic), one process at a time:
  N processes at once would need N times the memory, which is the point of the comparison.

Every server gets both cores (``VLLM_CPU_OMP_THREADS_BIND=0-1``) and ``--enforce-eager``, so the
layouts differ only in LoRA and in how many servers there are. Memory is the resident set of each
server's process group (API server and engine core) after the measurement. Writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.bench_quality import processes_of
from selective_autonomy.inference.artefact import META_FILE, ArtefactMeta, read_meta, write_meta
from selective_autonomy.inference.llm.critic import LLMCritic
from selective_autonomy.inference.llm.policy import LLMPolicy
from selective_autonomy.inference.llm.server import LoRAServing, ServerConfig, VLLMServer
from selective_autonomy.inference.llm.settings import LLMClientSettings
from selective_autonomy.inference.llm.sft import SFTConfig, contrastive_critic_examples, train_llm_critic, train_policy
from selective_autonomy.inference.llm.sft_models import export_base
from selective_autonomy.inference.protocol import CriticInput, PolicySignals
from selective_autonomy.schemas.event_parts import ActionTier
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.schemas.process import ProcessSchema
from selective_autonomy.traces.format import Case
from selective_autonomy.traces.split import chronological_split

RESULTS = Path(__file__).parent / "results"
CPUS = "0-1"


@dataclass(frozen=True)
class Process:
    schema: ProcessSchema
    states: list[UIStateChanged]  # from the newest cases, never trained on
    policy_dir: Path
    critic_dir: Path
    policy_meta: ArtefactMeta
    critic_meta: ArtefactMeta
    train_s: float


def _train(schema: ProcessSchema, cases: list[Case], base: Path, root: Path, steps: int, max_len: int) -> Process:
    train, test = chronological_split(cases, (0.8, 0.2))
    config = SFTConfig(
        epochs=1,
        max_steps=steps,
        batch_size=4,
        max_model_len=max_len,
        max_new_tokens=96,
        merge_lora=False,
        val_fraction=0.0,  # no held-out loss: on SGD it costs minutes and this measures serving
    )
    started = time.monotonic()
    name = schema.process_id.replace("/", "_")
    policy_dir, critic_dir = root / name / "policy", root / name / "critic"
    if (policy_dir / META_FILE).is_file() and (critic_dir / META_FILE).is_file():  # a rerun in the same --work
        policy_meta, critic_meta = read_meta(policy_dir), read_meta(critic_dir)
    else:
        policy_meta = train_policy(train[:200], schema, policy_dir, config, base=base)
        examples = contrastive_critic_examples(train[:200])
        critic_meta = train_llm_critic(examples, schema, critic_dir, config, base=base)
    states = [case.state_event(i) for case in test for i in range(len(case.steps))]
    return Process(
        schema=schema,
        states=states,
        policy_dir=policy_dir,
        critic_dir=critic_dir,
        policy_meta=policy_meta,
        critic_meta=critic_meta,
        train_s=time.monotonic() - started,
    )


def _merged_copy(base: Path, adapter: Path, out: Path) -> Path:
    """The adapter merged into a copy of the base: a whole model, served by a server of its own."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base), local_files_only=True)
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(out))
    for item in adapter.iterdir():
        if item.is_file() and not item.name.startswith("adapter_") and item.name != META_FILE:
            (out / item.name).write_bytes(item.read_bytes())
    meta = read_meta(adapter)
    lora = {**meta.params["lora"], "merged": True}
    write_meta(out, meta.model_copy(update={"params": {**meta.params, "lora": lora}}))
    return out


def _server(model_dir: Path, name: str, work: Path, max_len: int, lora: LoRAServing | None = None) -> VLLMServer:
    return VLLMServer(
        ServerConfig(
            model_dir=model_dir,
            served_model_name=name,
            max_model_len=max_len,
            kv_cache_gib=2,
            max_num_seqs=32,
            cpu_bind=CPUS,
            enforce_eager=True,
            lora=lora,
            work_dir=work,
            startup_timeout_s=900,
        )
    )


def _rss_gib(server: VLLMServer) -> float:
    """Resident memory of the server's process group: the API server and its engine core."""
    if server.pid is None:
        return 0.0
    group = os.getpgid(server.pid)
    total = 0
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == group:
                total += proc.memory_info().rss
        except (ProcessLookupError, psutil.Error):
            continue
    return total / 2**30


def _decide(policy: LLMPolicy, critic: LLMCritic, states: Sequence[UIStateChanged]) -> float:
    """One decision batch: the policy's greedy proposals, the critic's scores of them; seconds."""
    started = time.perf_counter()
    proposals = policy.propose(states, top_k=1)
    items = [
        CriticInput(event=state, action=p.top.action, tier=ActionTier.critical, signals=PolicySignals())
        for state, p in zip(states, proposals, strict=True)
        if p.top is not None
    ]
    critic.score(items)
    return time.perf_counter() - started


def _models(process: Process, urls: tuple[str, str], policy_dir: Path, critic_dir: Path) -> tuple[LLMPolicy, LLMCritic]:
    def settings(url: str) -> LLMClientSettings:
        return LLMClientSettings(url=url, timeout_s=600.0, max_retries=0)

    return (
        LLMPolicy.load(policy_dir, process.schema, settings(urls[0])),
        LLMCritic.load(critic_dir, process.schema, settings(urls[1])),
    )


def _summary(latencies: list[float], batch: int, wall_s: float) -> dict[str, Any]:
    ordered = sorted(latencies)
    return {
        "batch": batch,
        "calls": len(ordered),
        "decisions_per_s": round(batch * len(ordered) / wall_s, 3),
        "p50_s": round(statistics.median(ordered), 3),
        "p99_s": round(ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))], 3),
        "wall_s": round(wall_s, 2),
    }


def _load(
    models: dict[str, tuple[LLMPolicy, LLMCritic]], processes: list[Process], batch: int, calls: int
) -> dict[str, Any]:
    """Each process's decisions in turn: ``calls`` batches of ``batch`` states each."""
    out: dict[str, Any] = {}
    for process in processes:
        policy, critic = models[process.schema.process_id]
        _decide(policy, critic, process.states[:batch])  # warm-up: first request of this adapter
        latencies: list[float] = []
        started = time.perf_counter()
        for call in range(calls):
            window = process.states[call * batch : (call + 1) * batch] or process.states[:batch]
            latencies.append(_decide(policy, critic, window))
        out[process.schema.process_id] = _summary(latencies, batch, time.perf_counter() - started)
    return out


def _concurrent(
    models: dict[str, tuple[LLMPolicy, LLMCritic]], processes: list[Process], batch: int, calls: int
) -> dict[str, Any]:
    """All processes at once, one thread each (workers of different processes on one server)."""
    latencies: list[float] = []
    lock = threading.Lock()

    def run(process: Process) -> None:
        policy, critic = models[process.schema.process_id]
        for call in range(calls):
            window = process.states[call * batch : (call + 1) * batch] or process.states[:batch]
            took = _decide(policy, critic, window)
            with lock:
                latencies.append(took)

    threads = [threading.Thread(target=run, args=(p,)) for p in processes]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return _summary(latencies, batch, time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", type=Path, required=True, help="Base model directory (HF checkpoint or GGUF).")
    parser.add_argument("--logs", nargs="+", default=["helpdesk", "bpi2012w", "sgd-dev"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--calls", type=int, default=8, help="Decision batches per process and batch size.")
    parser.add_argument("--train-steps", type=int, default=2)
    parser.add_argument("--max-model-len", type=int, default=512)
    parser.add_argument(
        "--work", type=Path, default=None, help="Scratch directory (adapters found there are reused); default temp."
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "lora_serving.json")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="selauto-lora-bench-"))
    started = time.monotonic()

    servable = args.base if (args.base / "config.json").is_file() else work / "base-hf"
    if not (servable / "config.json").is_file():
        export_base(args.base, servable)
    processes = [
        _train(schema, cases, args.base, work / "adapters", args.train_steps, args.max_model_len)
        for log in args.logs
        for schema, cases in processes_of(log, None, 1)[:1]
    ]
    print(f"trained {len(processes)} x 2 adapters in {sum(p.train_s for p in processes):.0f}s", flush=True)
    report: dict[str, Any] = {
        "benchmark": "lora_serving",
        "command": "python -m bench.bench_lora_serving --base " + str(args.base) + " --logs " + " ".join(args.logs),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "base": args.base.name,
        "processes": [p.schema.process_id for p in processes],
        "adapter_train_steps": args.train_steps,
        "train_s": {p.schema.process_id: round(p.train_s, 1) for p in processes},
        "max_model_len": args.max_model_len,
        "server": {"cpu_bind": CPUS, "enforce_eager": True, "kv_cache_gib": 2},
    }

    # One server: the base and every adapter.
    adapters = {p.policy_meta.version: p.policy_dir for p in processes}
    adapters |= {p.critic_meta.version: p.critic_dir for p in processes}
    lora = LoRAServing(adapters=adapters, max_loras=len(adapters), max_cpu_loras=len(adapters) + 1)
    server = _server(servable, "base", work / "shared-server", args.max_model_len, lora)
    with server:
        urls = (server.url, server.url)
        models = {p.schema.process_id: _models(p, urls, p.policy_dir, p.critic_dir) for p in processes}
        shared: dict[str, Any] = {"servers": 1, "start_s": round(server.startup_seconds or 0.0, 1)}
        shared["sequential"] = {str(b): _load(models, processes, b, args.calls) for b in args.batches}
        shared["concurrent"] = {str(b): _concurrent(models, processes, b, args.calls) for b in args.batches}
        shared["rss_gib"] = round(_rss_gib(server), 2)
        policy, critic = models[processes[0].schema.process_id]
        unloaded = httpx.post(f"{server.url}/unload_lora_adapter", json={"lora_name": policy.version}, timeout=60)
        unloaded.raise_for_status()
        loading = time.perf_counter()
        policy.client.load_adapter()
        shared["hot_load_s"] = round(time.perf_counter() - loading, 3)
        shared["first_decision_after_hot_load_s"] = round(_decide(policy, critic, processes[0].states[:1]), 3)
    report["shared"] = shared
    print(json.dumps(shared, indent=1), flush=True)

    # One server per model, one process at a time.
    per_model: dict[str, Any] = {"servers": 2 * len(processes), "processes": {}}
    for p in processes:
        name = p.schema.process_id.replace("/", "_")
        policy_dir = _merged_copy(servable, p.policy_dir, work / "merged" / name / "policy")
        critic_dir = _merged_copy(servable, p.critic_dir, work / "merged" / name / "critic")
        servers = [
            _server(policy_dir, p.policy_meta.version, work / "servers" / name / "policy", args.max_model_len),
            _server(critic_dir, p.critic_meta.version, work / "servers" / name / "critic", args.max_model_len),
        ]
        try:
            for each in servers:
                each.launch()
            for each in servers:
                each.wait_ready()
            models = {p.schema.process_id: _models(p, (servers[0].url, servers[1].url), policy_dir, critic_dir)}
            per_model["processes"][p.schema.process_id] = {
                "start_s": [round(s.startup_seconds or 0.0, 1) for s in servers],
                "sequential": {str(b): _load(models, [p], b, args.calls)[p.schema.process_id] for b in args.batches},
                "rss_gib": round(sum(_rss_gib(s) for s in servers), 2),
            }
        finally:
            for each in servers:
                each.stop()
        print(json.dumps(per_model["processes"][p.schema.process_id], indent=1), flush=True)
    per_model["rss_gib_all_processes"] = round(sum(v["rss_gib"] for v in per_model["processes"].values()), 2)
    report["per_model"] = per_model
    report["wall_s"] = round(time.monotonic() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
