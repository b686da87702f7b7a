"""The benchmark's command line and settings, and the agent-setting variants it can compare."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS = REPO_ROOT / "bench" / "results"

VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "decide_batch_window_20ms": ("decide", {"batch_window_s": 0.020}),
    "decide_batch_size_256": ("decide", {"batch_size": 256}),
    "decide_fetch_wait_5ms": ("decide", {"fetch_wait_ms": 5}),
    "decide_producer_linger_5ms": ("decide", {"worker": {"producer_linger_ms": 5.0}}),
    # Not safe on Tansu (table recovery then stops early): what the changelog's one-record tail costs.
    "decide_changelog_without_tail": (
        "decide",
        {"tweaks": {"faust_producer_max_batch_size": None, "changelog_single_record_tail": False}},
    ),
}
"""Agent settings tried against the defaults, at 1,000 ev/s and max rate: (pipeline, overrides of
the worker spec, see :meth:`~.phases.Bench.worker_spec`)."""


@dataclass(frozen=True)
class BenchConfig:
    loads: tuple[float | None, ...]
    """Offered loads in events/s; None is the max-rate phase."""
    duration_s: float
    warmup_s: float
    partitions: int
    fresh_per_phase: bool
    """Fresh topics and workers for every load (Tansu's fetch cost grows with the stored records)."""
    scaling_partitions: tuple[int, ...]
    scaling_workers: tuple[int, ...]
    scaling_duration_s: float
    tuning_load: float
    tuning_duration_s: float
    max_inflight: int
    max_backlog_s: float
    train_cases: int
    replay_cases: int
    execute_share: float
    batch_size: int
    batch_window_s: float
    linger_ms: float | None
    fetch_wait_ms: int | None
    drain_timeout_s: float
    quiet_wait_s: float
    quiet_cores: float
    retries: int
    contaminated_cores: float
    settle_s: float
    """Seconds a worker group's assignment must stay unchanged before a phase starts."""
    app_options: dict[str, Any]
    pipelines: tuple[str, ...]
    skip_scaling: bool
    skip_tuning: bool
    variants: tuple[str, ...]
    variant_duration_s: float
    profile: Path | None
    """Where the profile of the decide worker at max rate goes (``.md`` table, ``.collapsed`` stacks)."""
    profile_rate: int
    out: Path
    png: Path | None
    quick: bool
    from_json: Path | None


def parse_args(argv: Sequence[str] | None) -> BenchConfig:
    parser = argparse.ArgumentParser(prog="python -m bench.streaming", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: one low load and max, short phases")
    parser.add_argument("--duration", type=float, default=None, help="seconds of sending per load (default 8)")
    parser.add_argument("--warmup", type=float, default=None, help="warm-up seconds at 200 ev/s (default 1.5)")
    parser.add_argument("--loads", default=None, help="comma list of ev/s and 'max' (default 250,500,1000,2000,max)")
    parser.add_argument("--partitions", type=int, default=4, help="partitions for the load phases (default 4)")
    parser.add_argument("--scaling-partitions", default="1,2,4")
    parser.add_argument("--scaling-workers", default="1,2")
    parser.add_argument("--scaling-duration", type=float, default=None, help="seconds per scaling run (default 4)")
    parser.add_argument("--tuning-load", type=float, default=500.0)
    parser.add_argument("--tuning-duration", type=float, default=None, help="default: --duration")
    parser.add_argument("--max-inflight", type=int, default=2000, help="outstanding records in the max-rate phase")
    parser.add_argument(
        "--max-backlog",
        type=float,
        default=3.0,
        help="stop a fixed-rate phase early once this many seconds of records are outstanding (saturated)",
    )
    parser.add_argument("--train-cases", type=int, default=None, help="Helpdesk cases to train on (default 1500)")
    parser.add_argument("--replay-cases", type=int, default=None, help="held-out cases replayed (default 1000)")
    parser.add_argument("--execute-share", type=float, default=0.5, help="share of decisions above the threshold")
    parser.add_argument("--batch-size", type=int, default=None, help="decide batch size (default: WorkerSettings)")
    parser.add_argument("--batch-window-ms", type=float, default=None, help="decide batch window (default: settings)")
    parser.add_argument("--linger-ms", type=float, default=None, help="benchmark producer linger.ms (default: lib)")
    parser.add_argument("--fetch-wait-ms", type=int, default=None, help="override the profile's fetch wait")
    parser.add_argument(
        "--app-option",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="extra faust App setting for the agents, e.g. producer_linger=0.001 (repeatable)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=None,
        help="on a shared machine: wait up to this many seconds before each phase for other processes "
        "to use under --quiet-cores (default 10; 0 with --quick)",
    )
    parser.add_argument("--quiet-cores", type=float, default=0.3)
    parser.add_argument(
        "--retries",
        type=int,
        default=None,
        help="measure a phase again (at most this often) when other processes used over --contaminated-cores "
        "during it (default 1; 0 with --quick)",
    )
    parser.add_argument("--contaminated-cores", type=float, default=0.5)
    parser.add_argument("--drain-timeout", type=float, default=30.0, help="most seconds to wait for stragglers")
    parser.add_argument("--pipelines", default="raw,passthrough,decide")
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument("--skip-tuning", action="store_true")
    parser.add_argument(
        "--variants",
        default=None,
        help="agent setting variants to run: comma list, 'all' or 'none' (default all; none with --quick)",
    )
    parser.add_argument("--variant-duration", type=float, default=3.0, help="seconds per variant phase")
    parser.add_argument(
        "--profile",
        default=None,
        help="py-spy the decide worker in an extra max-rate run and write PREFIX.md and PREFIX.collapsed "
        "(default: next to --out, streaming_profile; none with --quick; '' for none)",
    )
    parser.add_argument("--profile-rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--out", type=Path, default=RESULTS / "streaming.json")
    parser.add_argument("--png", default=str(RESULTS / "streaming.png"), help="'' for no plot")
    parser.add_argument(
        "--from-json",
        type=Path,
        default=None,
        help="measure nothing: recompute the summary and redraw the plot of an earlier --out file",
    )
    args = parser.parse_args(argv)

    from selective_autonomy.config import WorkerSettings

    worker = WorkerSettings()
    quick = bool(args.quick)
    variants_text = args.variants or ("none" if quick else "all")
    if variants_text == "all":
        variants: tuple[str, ...] = tuple(VARIANTS)
    elif variants_text == "none":
        variants = ()
    else:
        variants = tuple(v.strip() for v in variants_text.split(",") if v.strip())
        unknown = [v for v in variants if v not in VARIANTS]
        if unknown:
            parser.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    loads_text = args.loads or ("200,max" if quick else "250,500,1000,2000,max")
    loads = tuple(None if item.strip() == "max" else float(item) for item in loads_text.split(",") if item.strip())
    duration = args.duration if args.duration is not None else (1.5 if quick else 8.0)
    default_profile = args.out.with_name(f"{args.out.stem}_profile")
    profile_text = args.profile if args.profile is not None else ("" if quick else str(default_profile))
    return BenchConfig(
        loads=loads,
        duration_s=duration,
        warmup_s=args.warmup if args.warmup is not None else (0.5 if quick else 1.5),
        partitions=args.partitions,
        fresh_per_phase=not quick,
        scaling_partitions=(1,) if quick else tuple(int(p) for p in args.scaling_partitions.split(",")),
        scaling_workers=(1,) if quick else tuple(int(w) for w in args.scaling_workers.split(",")),
        scaling_duration_s=args.scaling_duration if args.scaling_duration is not None else (1.5 if quick else 4.0),
        tuning_load=100.0 if quick else args.tuning_load,
        tuning_duration_s=args.tuning_duration if args.tuning_duration is not None else duration,
        max_inflight=args.max_inflight,
        max_backlog_s=args.max_backlog,
        train_cases=args.train_cases or (150 if quick else 1500),
        replay_cases=args.replay_cases or (100 if quick else 1000),
        execute_share=args.execute_share,
        batch_size=args.batch_size or worker.batch_size,
        batch_window_s=(args.batch_window_ms / 1000.0) if args.batch_window_ms else worker.batch_window_s,
        linger_ms=args.linger_ms,
        fetch_wait_ms=args.fetch_wait_ms,
        drain_timeout_s=args.drain_timeout,
        quiet_wait_s=args.quiet_wait if args.quiet_wait is not None else (0.0 if quick else 10.0),
        quiet_cores=args.quiet_cores,
        retries=args.retries if args.retries is not None else (0 if quick else 1),
        contaminated_cores=args.contaminated_cores,
        settle_s=0.5 if quick else 2.0,
        app_options={k: json.loads(v) for k, v in (item.split("=", 1) for item in args.app_option)},
        pipelines=tuple(p.strip() for p in args.pipelines.split(",") if p.strip()),
        skip_scaling=args.skip_scaling,
        skip_tuning=args.skip_tuning,
        variants=variants,
        variant_duration_s=args.variant_duration,
        profile=Path(profile_text) if profile_text else None,
        profile_rate=args.profile_rate,
        out=args.out,
        png=Path(args.png) if args.png else None,
        quick=quick,
        from_json=args.from_json,
    )


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)
