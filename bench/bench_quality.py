"""Quality benchmark: every shared log and the ABCD-guideline simulator, for each policy.

For each (log, policy): train on the past 40% of cases (chronological), run the copilot stage
offline over the next 30% with simulated operators, let the production learning loop train the
critic and certify thresholds (MAPIE), then replay the last 30% as the selective stage. Reported:
top-1 accuracy of the policy on the future, coverage at the certified precision, session
automation rate, realised precision and handling-time reduction. The n-gram baseline is measured
in the same run as the embedded policy; ratios are against it.

Usage: python bench/bench_quality.py [--logs helpdesk bpi2012w sgd-dev abcd] [--policies ngram embedded]
Writes bench/results/quality.json and quality.png. Any event log: --log PATH --mapping FILE.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.datasets import DATASETS_DIR
from selective_autonomy.config import LearningSettings
from selective_autonomy.demo.offline_loop import OfflineLoopResult, offline_loop
from selective_autonomy.inference.datasets import load_log
from selective_autonomy.schemas.process import ProcessSchema
from selective_autonomy.simulator.synthetic import SyntheticConfig, synthetic_abcd_cases
from selective_autonomy.traces.abcd import abcd_process_schema
from selective_autonomy.traces.format import Case

RESULTS = Path(__file__).parent / "results"


def abcd_process(cases: int = 3000, seed: int = 0) -> tuple[ProcessSchema, list[Case]]:
    # The ABCD guidelines are not shipped in the package: read them where the benchmarks find data.
    folder = DATASETS_DIR / "abcd" if DATASETS_DIR else None
    schema = abcd_process_schema(folder)
    config = SyntheticConfig(cases=cases, seed=seed)
    return schema, list(synthetic_abcd_cases(config, schema=schema, data_dir=folder))


def processes_of(log: str, mapping: str | None, sgd_processes: int) -> list[tuple[ProcessSchema, list[Case]]]:
    if log == "abcd":
        return [abcd_process()]
    loaded = sorted(load_log(log, mapping, data_dir=DATASETS_DIR), key=lambda p: -len(p.cases))
    if log == "sgd-dev":
        loaded = loaded[:sgd_processes]
    return [(p.schema, p.cases) for p in loaded]


def summarise(results: list[OfflineLoopResult]) -> dict[str, Any]:
    """Pool the replays of a log's processes (SGD has one per service)."""
    s = [r.selective for r in results]
    steps = sum(r.steps for r in s)
    executed = sum(r.steps_executed for r in s)
    correct = sum(r.executed_correct for r in s)
    sessions = sum(r.sessions for r in s)
    baseline = sum(r.baseline_time_s for r in s)
    future_steps = [r.selective.steps for r in results]
    return {
        "processes": [r.process_id for r in results],
        "future_top1": sum(r.future_top1 * n for r, n in zip(results, future_steps, strict=True)) / max(steps, 1),
        "copilot_acceptance": sum(r.copilot_acceptance for r in results) / len(results),
        "certified": any(r.learning.calibration and r.learning.calibration.certified_coverage() > 0 for r in results),
        "coverage": executed / steps if steps else 0.0,
        "precision": correct / executed if executed else None,
        "session_automation_rate": sum(r.sessions_unattended for r in s) / sessions if sessions else 0.0,
        "handling_time_reduction": 1 - sum(r.operator_time_s for r in s) / baseline if baseline else None,
        "stages": {
            r.process_id: r.learning.stage_changes[-1].to_stage.value if r.learning.stage_changes else "copilot"
            for r in results
        },
        "seconds": {
            k: round(sum(r.seconds.get(k, 0.0) for r in results), 1)
            for k in ("train_policy", "copilot", "learning", "selective")
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--logs", nargs="+", default=["helpdesk", "bpi2012w", "sgd-dev", "abcd"])
    parser.add_argument("--log", help="an event log path (with --mapping) instead of --logs")
    parser.add_argument("--mapping")
    parser.add_argument("--policies", nargs="+", default=["ngram", "embedded"])
    parser.add_argument("--sgd-processes", type=int, default=4)
    parser.add_argument("--target-precision", type=float, default=0.9)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    learning = LearningSettings(target_precision=args.target_precision)
    logs = [args.log] if args.log else args.logs
    started = time.monotonic()
    table: dict[str, dict[str, Any]] = {}
    for log in logs:
        processes = processes_of(log, args.mapping, args.sgd_processes)
        table[log] = {}
        for policy in args.policies:
            results = [offline_loop(schema, cases, policy, learning) for schema, cases in processes]
            table[log][policy] = summarise(results)
            row = table[log][policy]
            print(
                f"{log:10} {policy:9} top1 {row['future_top1']:.3f} coverage {row['coverage']:.3f} "
                f"precision {row['precision']} automation {row['session_automation_rate']:.3f} "
                f"handling -{row['handling_time_reduction']}",
                flush=True,
            )
        if "ngram" in table[log]:
            base = table[log]["ngram"]
            for row in table[log].values():
                row["top1_vs_ngram"] = row["future_top1"] / base["future_top1"] if base["future_top1"] else None
    payload = {
        "benchmark": "quality",
        "machine": {"python": platform.python_version(), "processor": platform.machine(), "cores": 2},
        "target_precision": args.target_precision,
        "confidence": learning.confidence,
        "split": "chronological 40/30/30: policy / copilot (critic + certification) / selective",
        "results": table,
        "wall_s": round(time.monotonic() - started, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quality.json").write_text(json.dumps(payload, indent=2))
    plot(table, args.out / "quality.png")


def plot(table: dict[str, dict[str, Any]], path: Path) -> None:
    metrics = [
        ("future_top1", "top-1 accuracy"),
        ("coverage", "step coverage"),
        ("session_automation_rate", "session automation"),
        ("handling_time_reduction", "handling time saved"),
    ]
    fig, axes = plt.subplots(1, len(metrics), figsize=(14, 3.6), sharey=True)
    logs = list(table)
    policies = sorted({p for row in table.values() for p in row})
    width = 0.8 / max(len(policies), 1)
    for ax, (key, title) in zip(axes, metrics, strict=True):
        for i, policy in enumerate(policies):
            values = [table[log].get(policy, {}).get(key) or 0.0 for log in logs]
            ax.bar([x + i * width for x in range(len(logs))], values, width, label=policy)
        ax.set_xticks([x + width * (len(policies) - 1) / 2 for x in range(len(logs))], logs, rotation=20)
        ax.set_title(title)
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
