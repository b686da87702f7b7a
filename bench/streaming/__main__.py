"""``python -m bench.streaming``: run the streaming benchmark (see the package docstring)."""

from __future__ import annotations

import json
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.streaming.load import EventSource
from bench.streaming.metering import load_average
from bench.streaming.models import prepare_models
from bench.streaming.phases import Bench, PhaseRunner, run_profile, run_scaling, run_tuning, run_variants
from bench.streaming.profile import tabulate
from bench.streaming.report import environment, plot, readme_table, summarise
from bench.streaming.settings import log as log_line
from bench.streaming.settings import parse_args


def redraw(config: Any) -> dict[str, Any]:
    """Recompute the summary and the plot of an earlier results file."""
    results: dict[str, Any] = json.loads(config.from_json.read_text())
    results["summary"] = summarise(results)
    profile = results.get("profile") or {}
    if profile.get("stacks") and (config.from_json.parent / profile["stacks"]).exists():
        settings = results["settings"]
        profile["summary"] = tabulate(
            profile, config.from_json.parent, settings["profile_rate"], settings["duration_s"]
        )
    config.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    if config.png is not None:
        plot(results, config.png)
    log_line("summary: " + json.dumps(results["summary"]))
    print(readme_table(results))
    return results


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    config = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the workers and the broker are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if config.from_json is not None:
        return redraw(config)
    from selective_autonomy.config import Settings
    from selective_autonomy.streams.broker import EmbeddedBroker
    from selective_autonomy.streams.kafka_config import tweaks_for

    started = time.perf_counter()
    load_at_start = load_average()
    workdir = Path(tempfile.mkdtemp(prefix="selauto-bench-"))
    log_line(f"workdir {workdir}; load average {load_at_start}")
    prepared = prepare_models(config, workdir / "models")
    log_line(
        f"models: {prepared.info['models']} ({prepared.info['policy_version']}, {prepared.info['critic_version']}),"
        f" threshold {prepared.info['threshold']:.3f}, prepared in {prepared.info['prepare_s']} s"
    )
    results: dict[str, Any] = {
        "benchmark": "streaming",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "environment": environment(),
        "models": prepared.info,
        "pipelines": {},
    }
    with EmbeddedBroker(log_path=workdir / "tansu.log") as broker:
        base = Settings(kafka=broker.kafka_settings(), data_dir=workdir / "data", models_dir=prepared.models_dir)
        source = EventSource(prepared.replay, base.topics.ui_state)
        runner = PhaseRunner(base, config, source)
        tweaks = tweaks_for(base.kafka)
        fetch_wait = config.fetch_wait_ms if config.fetch_wait_ms is not None else tweaks.consumer_fetch_wait_ms
        producer_config = runner.load.producer_config
        results["settings"] = {
            **{k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
            "profile": str(base.kafka.profile),
            "profile_tweaks": asdict(tweaks),
            "agent_fetch_wait_ms": fetch_wait,
            "bench_producer_linger_ms": producer_config.get("linger.ms", "librdkafka default (5)"),
            "bench_producer": {k: v for k, v in producer_config.items() if k != "bootstrap.servers"},
            "latency": "perf_counter() before produce() to the measuring consumer's poll returning the output record",
            "event_source": f"{len(source.schedule)} Helpdesk states per replay round, fresh sessions per round",
        }
        bench = Bench(config, broker, base, prepared, source, runner, workdir)
        phases = [(rate, config.duration_s) for rate in config.loads]
        for kind in config.pipelines:
            log_line(f"pipeline {kind}: {config.partitions} partitions")
            results["pipelines"][kind] = bench.pipeline_per_phase(kind, config.partitions, phases)
        if not config.skip_tuning:
            results["tuning"] = run_tuning(bench, results["pipelines"].get("passthrough"), fetch_wait)
        if not config.skip_scaling:
            results["scaling"] = run_scaling(bench)
        if config.variants:
            results["variants"] = run_variants(bench)
        if config.profile is not None and "decide" in config.pipelines:
            results["profile"] = run_profile(bench, config.profile)
        runner.close()
    results["load_average"] = {"start": load_at_start, "end": load_average()}
    results["summary"] = summarise(results)
    results["wall_s"] = round(time.perf_counter() - started, 1)
    config.out.parent.mkdir(parents=True, exist_ok=True)
    config.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    log_line(f"wrote {config.out}")
    if config.png is not None:
        plot(results, config.png)
        log_line(f"wrote {config.png}")
    log_line("summary: " + json.dumps(results["summary"]))
    print(readme_table(results))
    return results


if __name__ == "__main__":
    main()
