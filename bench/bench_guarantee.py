"""Guarantee benchmark: does the precision certified for unattended steps hold on the future?

For each log, target and gate, on one chronological 40/30/30 split (policy / copilot / future) with
the embedded policy trained once per process and one shared copilot stage:

* ``selauto``: this project's gate: the critic chosen among the policy's confidence, the critic in
  service and a newly trained one, Learn-Then-Test per action type on unbiased evidence, the
  exploration holdout, audits, the anytime-valid monitor and recertification while the future runs
  (the production learning loop, offline);
* ``confidence``: the same machinery with the policy's own probability as the only critic;
* ``paper``: the reference paper's recipe: a critic trained on the copilot feedback and one
  threshold tuned on held-out feedback to reach the target acceptance; no guarantee, no monitor,
  no audits, never revisited.

The future is replayed as live sessions: operators answer deferrals, undo wrong unattended steps
(paying the interruption, the undo and the step: the handling time counts it), work the exploration
holdout, and audit a sample of unattended steps (QA time, reported apart). ``sessions_to_certificate``
reruns the learning plan on growing prefixes of the copilot feedback (sessions in the order they ran).

Usage: python -m bench.bench_guarantee [--logs helpdesk bpi2012w sgd-dev abcd] [--targets 0.85 0.9 0.95]
       [--gates selauto confidence paper] [--log PATH --mapping FILE]
Writes bench/results/guarantee.json and guarantee.png.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.bench_quality import processes_of
from selective_autonomy.config import LearningSettings
from selective_autonomy.demo.autonomy_curve import autonomy_curve
from selective_autonomy.demo.offline_loop import (
    CopilotPairs,
    OfflineLoopConfig,
    OfflineLoopResult,
    offline_loop,
    train_policy,
)
from selective_autonomy.inference.embedded_policy import EmbeddedPolicy
from selective_autonomy.inference.ngram import NGramPolicy
from selective_autonomy.inference.protocol import Critic, PolicyConfidenceCritic
from selective_autonomy.inference.registry import ProcessModels, ServicePointer
from selective_autonomy.inference.thresholds import Thresholds
from selective_autonomy.learning.calibration import DEFAULT_GRID
from selective_autonomy.learning.critic_choice import fit_critic
from selective_autonomy.learning.evidence import CriticExample, critic_examples
from selective_autonomy.learning.splits import split_evidence
from selective_autonomy.schemas.event_parts import ActionTier, Stage
from selective_autonomy.schemas.process import ProcessSchema
from selective_autonomy.simulator.offline import offline_copilot, offline_replay, with_context
from selective_autonomy.simulator.operator_model import HandlingTimeModel
from selective_autonomy.simulator.report import ReplayReport
from selective_autonomy.traces.format import Case
from selective_autonomy.traces.split import chronological_split

RESULTS = Path(__file__).parent / "results"
CHECKPOINTS = (25, 50, 100, 200, 400, 800, 1600)
GATES = ("selauto", "confidence", "paper")


class Prepared:
    """One process's split, policy and copilot stage, shared by every (target, gate) row."""

    def __init__(self, schema: ProcessSchema, cases: list[Case]) -> None:
        self.schema = schema
        self.cases = cases
        self.train, self.copilot, self.future = chronological_split(cases, (0.4, 0.3, 0.3))
        self.policy: EmbeddedPolicy | NGramPolicy = train_policy("embedded", schema, self.train)
        models = ProcessModels(schema, self.policy, PolicyConfidenceCritic(), ServicePointer(policy="in-memory"))
        self.pairs: CopilotPairs = list(offline_copilot(models, self.copilot))
        self.examples: list[CriticExample] = critic_examples(with_context(self.pairs))
        days = max((cases[-1].started_at - cases[0].started_at).total_seconds() / 86400.0, 1.0)
        self.sessions_per_day = len(cases) / days


def paper_threshold(critic: Critic, examples: Sequence[CriticExample], target: float) -> float | None:
    """The lowest grid threshold whose empirical precision on ``examples`` reaches ``target``."""
    if not examples:
        return None
    scores = np.asarray(critic.score([e.critic_input() for e in examples]))
    labels = np.asarray([e.label for e in examples], dtype=bool)
    chosen = None
    for threshold in DEFAULT_GRID:  # strictest first
        passed = scores >= threshold
        if passed.any() and labels[passed].mean() >= target:
            chosen = float(threshold)
        elif passed.any():
            break
    return chosen


def run_paper(prepared: Prepared, target: float) -> tuple[ReplayReport, int | None]:
    splits = split_evidence(prepared.examples, LearningSettings())
    critic = fit_critic(prepared.schema, splits.train, splits.select)
    threshold = paper_threshold(critic, splits.certify, target)
    values = {}
    if threshold is not None:
        for cluster in prepared.schema.business_clusters:
            for tier in (ActionTier.auto, ActionTier.critical):
                values[f"{prepared.schema.process_id}/{cluster.id}/{tier.value}"] = threshold
    pointer = ServicePointer(
        policy="in-memory", thresholds=Thresholds(values=values, version="paper"), default_stage=Stage.selective
    )
    report = offline_replay(
        ProcessModels(prepared.schema, prepared.policy, critic, pointer),
        prepared.future,
        handling=HandlingTimeModel.from_cases(prepared.train),
        run_id="future",
    )
    return report, paper_sessions_to_threshold(prepared, target)


def paper_sessions_to_threshold(prepared: Prepared, target: float) -> int | None:
    """Copilot sessions before the paper's recipe finds a threshold (on the newest 30% of them)."""
    order = list(dict.fromkeys(e.event.session_id for e in prepared.examples))
    rank = {s: i for i, s in enumerate(order)}
    for k in CHECKPOINTS:
        seen = [e for e in prepared.examples if rank[e.event.session_id] < k]
        splits = split_evidence(seen, LearningSettings())
        if len(splits.train) < 20 or not splits.select or not splits.certify:
            continue
        critic = fit_critic(prepared.schema, splits.train, splits.select)
        if paper_threshold(critic, splits.certify, target) is not None:
            return k
    return None


def row_of(log: str, target: float, gate: str, reports: list[ReplayReport], extra: dict[str, Any]) -> dict[str, Any]:
    executed = sum(r.steps_executed for r in reports)
    correct = sum(r.executed_correct for r in reports)
    steps = sum(r.steps for r in reports)
    sessions = sum(r.sessions for r in reports)
    baseline = sum(r.baseline_time_s for r in reports)
    operator = sum(r.operator_time_s for r in reports)
    audits = sum(r.audits for r in reports)
    deferred = sum(r.steps_deferred for r in reports)
    return {
        "log": log,
        "target": target,
        "gate": gate,
        "realised_precision": correct / executed if executed else None,
        "executed": executed,
        "coverage": executed / steps if steps else 0.0,
        "sessions_automated": sum(r.sessions_unattended for r in reports) / sessions if sessions else 0.0,
        "aht_reduction": 1 - operator / baseline if baseline else None,
        "audits": audits,
        "audit_share": audits / executed if executed else 0.0,
        "audit_hours": round(sum(r.audit_time_s for r in reports) / 3600, 2),
        "operator_hours": round(operator / 3600, 2),
        "baseline_hours": round(baseline / 3600, 2),
        "deferred": deferred,
        "wrong_unattended": executed - correct,
        "deferrals_by_reason": _summed([r.deferrals_by_reason for r in reports]),
        **extra,
    }


def _summed(dicts: Sequence[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return dict(sorted(out.items()))


def learn_offline(prepared: Prepared, learning: LearningSettings, config: OfflineLoopConfig) -> OfflineLoopResult:
    """The production learning loop over the prepared split, offline (one row of a gate)."""
    with tempfile.TemporaryDirectory(prefix="selauto-guarantee-") as workdir:
        return offline_loop(
            prepared.schema,
            prepared.cases,
            "embedded",
            learning,
            config=config,
            policy=prepared.policy,
            copilot_pairs=prepared.pairs,
            workdir=Path(workdir),
        )


def run_learning(
    prepared: Prepared, target: float, gate: str, config: OfflineLoopConfig, certify_blocks: int | None = None
) -> tuple[ReplayReport, dict[str, Any]]:
    learning = LearningSettings(
        target_precision=target,
        critic="auto" if gate == "selauto" else "confidence",
        certify_blocks=certify_blocks or LearningSettings().certify_blocks,
    )
    result = learn_offline(prepared, learning, config)
    curve = autonomy_curve(
        prepared.schema, prepared.policy, prepared.examples, CHECKPOINTS, learning, prepared.sessions_per_day
    )
    changes = [c for r in [result.learning, *result.relearning] for c in r.stage_changes]
    alarms = sum(1 for c in changes if "precision monitor" in c.reason)
    return result.selective, {
        "sessions_to_certificate": curve.sessions_to_certificate(),
        "stage_changes": len(changes),
        "monitor_alarms": alarms,
        "learning_runs": 1 + sum(r.retrained for r in result.relearning),
        "promoted_after_copilot": any(c.to_stage is Stage.selective for c in result.learning.stage_changes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--logs", nargs="+", default=["helpdesk", "bpi2012w", "sgd-dev", "abcd"])
    parser.add_argument("--log", help="an event log path (with --mapping) instead of --logs")
    parser.add_argument("--mapping")
    parser.add_argument("--targets", nargs="+", type=float, default=[0.85, 0.9, 0.95])
    parser.add_argument("--gates", nargs="+", default=list(GATES), choices=GATES)
    parser.add_argument("--sgd-processes", type=int, default=4)
    parser.add_argument("--audit-rate", type=float, default=0.04)
    parser.add_argument("--relearn-every", type=int, default=1000)
    parser.add_argument("--certify-blocks", type=int, default=LearningSettings().certify_blocks)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    config = OfflineLoopConfig(audit_rate=args.audit_rate, relearn_every=args.relearn_every)
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    for log in [args.log] if args.log else args.logs:
        prepared = [Prepared(schema, cases) for schema, cases in processes_of(log, args.mapping, args.sgd_processes)]
        for target in args.targets:
            for gate in args.gates:
                t = time.monotonic()
                reports, extras = [], []
                for process in prepared:
                    if gate == "paper":
                        report, sessions = run_paper(process, target)
                        extras.append({"sessions_to_certificate": sessions})
                    else:
                        report, extra = run_learning(process, target, gate, config, args.certify_blocks)
                        extras.append(extra)
                    reports.append(report)
                to_certificate = [e.get("sessions_to_certificate") for e in extras]
                row = row_of(
                    log,
                    target,
                    gate,
                    reports,
                    {
                        "processes": [p.schema.process_id for p in prepared],
                        "sessions_to_certificate": min((s for s in to_certificate if s is not None), default=None),
                        "monitor_alarms": sum(e.get("monitor_alarms", 0) for e in extras),
                        "stage_changes": sum(e.get("stage_changes", 0) for e in extras),
                        "seconds": round(time.monotonic() - t, 1),
                    },
                )
                rows.append(row)
                precision = row["realised_precision"]
                print(
                    f"{log:9} {target:.2f} {gate:10} precision {'-' if precision is None else f'{precision:.3f}'} "
                    f"coverage {row['coverage']:.3f} audits {row['audit_share']:.3f} aht {row['aht_reduction']:.3f} "
                    f"sessions->cert {row['sessions_to_certificate']} ({row['seconds']} s)",
                    flush=True,
                )
    handling = HandlingTimeModel()
    payload = {
        "benchmark": "guarantee",
        "command": " ".join(["python -m bench.bench_guarantee", *sys.argv[1:]]),
        "machine": {"python": platform.python_version(), "processor": platform.machine(), "cores": 2},
        "confidence": LearningSettings().confidence,
        "audit_rate": args.audit_rate,
        "exploration_share": LearningSettings().exploration_share,
        "relearn_every": args.relearn_every,
        "certify_blocks": args.certify_blocks,
        "interruption_s_per_deferral": handling.interruption_s,
        "split": "chronological 40/30/30: policy / copilot / future",
        "rows": rows,
        "wall_s": round(time.monotonic() - started, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = "guarantee" if not args.log else f"guarantee_{Path(args.log).name.split('.')[0].lower()}"
    (args.out / f"{name}.json").write_text(json.dumps(payload, indent=2))
    plot(rows, args.out / f"{name}.png")


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Certified against realised per log (reliability), and realised precision against coverage."""
    logs = list(dict.fromkeys(r["log"] for r in rows))
    markers = {"selauto": "o", "confidence": "s", "paper": "^"}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, log in enumerate(logs):
        for gate, marker in markers.items():
            mine = [r for r in rows if r["log"] == log and r["gate"] == gate and r["realised_precision"] is not None]
            if not mine:
                continue
            axes[0].scatter(
                [r["target"] for r in mine],
                [r["realised_precision"] for r in mine],
                marker=marker,
                color=colours[i % len(colours)],
                label=f"{log} {gate}",
            )
            axes[1].plot(
                [r["coverage"] for r in mine],
                [1 - r["realised_precision"] for r in mine],
                marker=marker,
                color=colours[i % len(colours)],
                linestyle="-" if gate == "selauto" else ":",
                label=f"{log} {gate}",
            )
    lo = min(r["target"] for r in rows) - 0.05
    axes[0].plot([lo, 1], [lo, 1], color="grey", linewidth=1, linestyle="--")
    axes[0].set_xlabel("certified (target) precision")
    axes[0].set_ylabel("realised precision on the future")
    axes[0].set_title("Reliability: on or above the diagonal keeps the promise")
    axes[1].set_xlabel("coverage (future steps run unattended)")
    axes[1].set_ylabel("risk (1 - realised precision)")
    axes[1].set_title("Risk against coverage (targets 0.85 / 0.90 / 0.95)")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
