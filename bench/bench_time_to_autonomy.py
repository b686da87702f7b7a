"""Time-to-autonomy benchmark: copilot sessions needed before certified coverage exceeds 25% and 50%.

For each log: the policy is trained on the past 40% of cases (chronological); the copilot stage runs
offline over the next 30% with simulated operators; for growing prefixes of that feedback the
learning plan runs exactly as the loop would have then (critic chosen among the policy's confidence
and a newly trained one, thresholds certified per action type). Sessions are also
expressed as days of the log's own traffic.

Usage: python bench/bench_time_to_autonomy.py [--logs helpdesk bpi2012w abcd] [--policy embedded]
Writes bench/results/time_to_autonomy.json and .png. Any event log: --log PATH --mapping FILE.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.bench_quality import processes_of
from selective_autonomy.config import LearningSettings
from selective_autonomy.demo.autonomy_curve import autonomy_curve
from selective_autonomy.demo.offline_loop import train_policy
from selective_autonomy.inference.protocol import PolicyConfidenceCritic
from selective_autonomy.inference.registry import ProcessModels, ServicePointer
from selective_autonomy.learning.evidence import critic_examples
from selective_autonomy.simulator.offline import offline_copilot, with_context
from selective_autonomy.traces.split import chronological_split

RESULTS = Path(__file__).parent / "results"
CHECKPOINTS = (25, 50, 100, 200, 400, 800, 1600, 3200)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--logs", nargs="+", default=["helpdesk", "bpi2012w", "abcd"])
    parser.add_argument("--log", help="an event log path (with --mapping) instead of --logs")
    parser.add_argument("--mapping")
    parser.add_argument("--policy", default="embedded")
    parser.add_argument("--target-precision", type=float, default=0.9)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    learning = LearningSettings(target_precision=args.target_precision)
    started = time.monotonic()
    results: dict[str, Any] = {}
    for log in [args.log] if args.log else args.logs:
        schema, cases = processes_of(log, args.mapping, 1)[0]
        train, copilot, _future = chronological_split(cases, (0.4, 0.3, 0.3))
        policy = train_policy(args.policy, schema, train)
        models = ProcessModels(schema, policy, PolicyConfidenceCritic(), ServicePointer(policy="in-memory"))
        examples = critic_examples(with_context(list(offline_copilot(models, copilot))))
        days = max((cases[-1].started_at - cases[0].started_at).total_seconds() / 86400.0, 1.0)
        curve = autonomy_curve(schema, policy, examples, CHECKPOINTS, learning, len(cases) / days)
        results[log] = {
            "copilot_sessions": len(copilot),
            "sessions_per_day": round(len(cases) / days, 2),
            "sessions_to_25pct": curve.sessions_to_reach(0.25),
            "sessions_to_50pct": curve.sessions_to_reach(0.50),
            "sessions_to_certificate": curve.sessions_to_certificate(),
            "points": [p.model_dump() for p in curve.points],
        }
        print(
            f"{log:10} 25%: {results[log]['sessions_to_25pct']} sessions, 50%: {results[log]['sessions_to_50pct']}",
            flush=True,
        )
    payload = {
        "benchmark": "time_to_autonomy",
        "policy": args.policy,
        "target_precision": args.target_precision,
        "confidence": learning.confidence,
        "results": results,
        "wall_s": round(time.monotonic() - started, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "time_to_autonomy.json").write_text(json.dumps(payload, indent=2))
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for log, row in results.items():
        ax.plot(
            [p["sessions"] for p in row["points"]],
            [p["certified_coverage"] for p in row["points"]],
            marker="o",
            label=log,
        )
    ax.set_xscale("log")
    ax.set_xlabel("copilot sessions seen")
    ax.set_ylabel("certified coverage")
    ax.set_ylim(0, 1)
    ax.axhline(0.25, color="grey", linewidth=0.8, linestyle=":")
    ax.axhline(0.5, color="grey", linewidth=0.8, linestyle=":")
    ax.set_title(f"Time to autonomy (precision >= {args.target_precision:.0%}, {args.policy} policy)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out / "time_to_autonomy.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
