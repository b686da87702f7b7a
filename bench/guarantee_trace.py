"""One row of the guarantee benchmark, run by run: what each learning run decided and why.

The guarantee benchmark reports one line per (log, target, gate); when a row's coverage or
precision is off, this shows where it came from: for every learning run while the future replays,
its notes (policy update, critic choice, evidence left out), the monitor's reading, the certified
keys (samples, threshold, coverage on the certifying evidence) and the stage changes. Same split,
policy, copilot stage and loop as ``bench/bench_guarantee.py``'s ``selauto`` gate.

Usage: python -m bench.guarantee_trace [--log bpi2012w] [--target 0.9] [--threshold-step S] [--out FILE]
Writes bench/results/guarantee_trace_<log>_<target>.json unless ``--out`` says where.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.bench_guarantee import Prepared, learn_offline
from bench.bench_quality import processes_of
from selective_autonomy.config import LearningSettings
from selective_autonomy.demo.offline_loop import OfflineLoopConfig
from selective_autonomy.learning.apply import LearningReport

RESULTS = Path(__file__).parent / "results"


def run_of(index: int, report: LearningReport) -> dict[str, Any]:
    calibration = report.calibration
    return {
        "run": index,
        "feedback": report.feedback,
        "critic": report.critic,
        "notes": report.notes,
        "monitor": {
            cluster: {
                "outcomes": reading.outcomes,
                "accepted": reading.accepted,
                "estimate": reading.estimate,
                "alarm": reading.alarm,
                "alarm_by": reading.alarm_by,
            }
            for cluster, reading in report.monitor.items()
        },
        "lifts": report.lifts,
        "certified": None
        if calibration is None
        else {
            result.key: {"samples": result.samples, "threshold": result.threshold, "coverage": result.coverage}
            for result in calibration.results
        },
        "stage_changes": [
            {"from": c.from_stage.value, "to": c.to_stage.value, "reason": c.reason} for c in report.stage_changes
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--log", default="bpi2012w")
    parser.add_argument("--target", type=float, default=0.9)
    parser.add_argument("--audit-rate", type=float, default=0.04)
    parser.add_argument("--relearn-every", type=int, default=1000)
    parser.add_argument("--threshold-step", type=float, default=LearningSettings().threshold_step)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    started = time.monotonic()
    ((schema, cases),) = processes_of(args.log, None, 1)
    prepared = Prepared(schema, cases)
    learning = LearningSettings(target_precision=args.target, critic="auto", threshold_step=args.threshold_step)
    config = OfflineLoopConfig(audit_rate=args.audit_rate, relearn_every=args.relearn_every)
    result = learn_offline(prepared, learning, config)
    reports = [result.learning, *result.relearning]
    # Runs that only confirmed a current certificate and saw no alarm say nothing new: kept as a count.
    runs = [
        run_of(i, r)
        for i, r in enumerate(reports)
        if r.calibration is not None or r.stage_changes or r.lifts or any(m.alarm for m in r.monitor.values())
    ]
    replay = result.selective
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True, check=False)
    payload = {
        "benchmark": "guarantee_trace",
        "command": f"python -m bench.guarantee_trace --log {args.log} --target {args.target}"
        f" --threshold-step {args.threshold_step}",
        "commit": commit.stdout.strip() or None,
        "machine": {"python": platform.python_version(), "processor": platform.machine(), "cores": 2},
        "log": args.log,
        "target": args.target,
        "threshold_step": args.threshold_step,
        "learning_runs": len(reports),
        "runs": runs,
        "future": {
            "steps": replay.steps,
            "executed": replay.steps_executed,
            "coverage": replay.steps_executed / replay.steps if replay.steps else 0.0,
            "realised_precision": replay.executed_correct / replay.steps_executed if replay.steps_executed else None,
            "audits": replay.audits,
            "deferrals_by_reason": replay.deferrals_by_reason,
        },
        "wall_s": round(time.monotonic() - started, 1),
    }
    out = args.out or RESULTS / f"guarantee_trace_{args.log}_{args.target:.2f}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2))
    future = payload["future"]
    print(f"{args.log} {args.target:.2f}: coverage {future['coverage']:.3f} precision {future['realised_precision']}")


if __name__ == "__main__":
    main()
