"""The demo's report: Markdown plus PNG plots, and the raw numbers as JSON."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from pydantic import BaseModel

from selective_autonomy.demo.loop import DemoResult
from selective_autonomy.simulator.report import ReplayReport

PAPER = "45% of sessions automated end to end, handling time down 39%, selective within two weeks"


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _plot_curve(result: DemoResult, path: Path) -> None:
    points = result.curve.points
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.plot([p.sessions for p in points], [p.certified_coverage for p in points], marker="o")
    ax.set_xscale("log")
    ax.set_xlabel("copilot sessions seen")
    ax.set_ylabel("certified coverage")
    ax.set_ylim(0, 1)
    ax.set_title(f"Time to autonomy (precision >= {result.target_precision:.0%} at {result.confidence:.0%} confidence)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_outcomes(result: DemoResult, path: Path) -> None:
    selective = result.selective
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.4))
    axes[0].bar(
        ["manual baseline", "selective"],
        [selective.baseline_time_s / 3600, selective.operator_time_s / 3600],
        color=["#999999", "#2a7ab0"],
    )
    axes[0].set_ylabel("operator hours")
    axes[0].set_title(f"Handling time ({pct(selective.handling_time_reduction)} less)")
    labels = ["certified (target)", "realised", "audits' estimate"]
    values = [result.target_precision, selective.precision or 0.0, audit_estimate(selective) or 0.0]
    axes[1].bar(labels, values, color=["#999999", "#2a7ab0", "#5fa55a"])
    axes[1].set_ylim(0, 1)
    axes[1].set_title("Precision of executed steps")
    for ax in axes:
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def audit_estimate(selective: ReplayReport) -> float | None:
    """Realised precision as the audits alone estimate it (a constant audit rate: the plain mean)."""
    return 1.0 - selective.audits_corrected / selective.audits if selective.audits else None


def precision_line(replay: ReplayReport, target_precision: float, confidence: float) -> str:
    """What was certified (``target_precision`` at ``confidence``) next to what ``replay``'s executed
    steps realised, and what the audits alone estimate."""
    verdict = "agree" if replay.precision is None or replay.precision >= target_precision else "DISAGREE"
    return (
        f"precision of executed steps: certified >= {target_precision:.0%} at {confidence:.0%} "
        f"confidence | realised {pct(replay.precision)} over {replay.steps_executed} unattended steps "
        f"(audits' estimate {pct(audit_estimate(replay))} from {replay.audits}) -> {verdict}"
    )


def certified_vs_realised(result: DemoResult) -> str:
    """One line for the console: what was certified next to what the future realised."""
    return precision_line(result.selective, result.target_precision, result.confidence)


def start_report(result: BaseModel, out_dir: Path) -> None:
    """Create ``out_dir`` and write the whole ``result`` there as ``report.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(result.model_dump_json(indent=2))


def finish_report(lines: list[str], phase_seconds: Mapping[str, float], out_dir: Path) -> Path:
    """Write ``lines`` and then the phase timings as ``out_dir/report.md``; return its path."""
    path = out_dir / "report.md"
    timings = "Phase timings (s): " + ", ".join(f"{k} {v}" for k, v in phase_seconds.items())
    path.write_text("\n".join([*lines, timings, ""]))
    return path


def write_report(result: DemoResult, out_dir: Path) -> Path:
    start_report(result, out_dir)
    _plot_curve(result, out_dir / "time_to_autonomy.png")
    _plot_outcomes(result, out_dir / "outcomes.png")
    s, c, learning = result.selective, result.copilot, result.learning
    reach_25 = result.curve.sessions_to_reach(0.25)
    reach_50 = result.curve.sessions_to_reach(0.50)
    per_day = result.curve.sessions_per_day

    def as_days(sessions: int | None) -> str:
        if sessions is None:
            return "not reached"
        return f"{sessions} sessions" + (f" (~{sessions / per_day:.0f} days of this log's traffic)" if per_day else "")

    calibration = learning.calibration.results if learning.calibration else []
    acceptance = c.feedback_by_verdict.get("accepted", 0) / c.feedback if c.feedback else None
    lines = [
        f"# Selective autonomy on `{Path(result.log).name}`",
        "",
        f"Cases: {result.cases['train']} past (policy training), {result.cases['copilot']} present (copilot), "
        f"{result.cases['future']} future (selective), split chronologically. Policy `{result.policy_version}`.",
        "",
        "## Headline",
        "",
        "| metric | value |",
        "|---|---|",
        f"| precision of executed steps: certified | >= {result.target_precision:.0%} at {result.confidence:.0%} "
        "confidence (per action type; watched by an anytime-valid monitor) |",
        f"| precision of executed steps: realised on the future | {pct(s.precision)} of {s.steps_executed} steps "
        f"(audits' estimate {pct(audit_estimate(s))} from {s.audits} audits) |",
        f"| step coverage (steps executed unattended) | {pct(s.coverage)} |",
        f"| sessions automated end to end (no deferral, no wrong step) | {pct(s.automation_rate)} |",
        f"| handling-time reduction vs all-manual (operator work in sessions) | {pct(s.handling_time_reduction)} |",
        f"| QA time on audits (not in the handling time) | {s.audit_time_s / 3600:.1f} h |",
        f"| deferrals per operator-hour | {s.deferrals_per_operator_hour or 0:.1f} |",
        f"| copilot sessions to certified coverage > 25% | {as_days(reach_25)} |",
        f"| copilot sessions to certified coverage > 50% | {as_days(reach_50)} |",
        "",
        f"For orientation, the reference production figures: {PAPER}.",
        "",
        "![outcomes](outcomes.png)",
        "",
        "## Copilot stage",
        "",
        f"{c.sessions} sessions, {c.steps} steps, every step a suggestion. Operators' verdicts: "
        + ", ".join(f"{k} {v}" for k, v in sorted(c.feedback_by_verdict.items()))
        + f". Copilot top-1 acceptance: {pct(acceptance)}.",
        "",
        "## Learning",
        "",
        f"Critic `{learning.critic_version}` ({learning.critic}) from {learning.critic_examples} "
        "feedback examples. Certified thresholds (MAPIE, fixed-sequence Learn-Then-Test, one per action type):",
        "",
        "| process/cluster/tier/action | calibration samples | threshold | coverage | calibration precision "
        "| lower bound |",
        "|---|---|---|---|---|---|",
        *[
            f"| {r.key} | {r.samples} | {r.threshold if r.threshold is not None else 'none certified'} | "
            f"{pct(r.coverage)} | {pct(r.empirical_precision)} | {pct(r.lower_bound)} |"
            for r in calibration
        ],
        "",
        "Stage changes: "
        + (
            "; ".join(
                f"{ch.business_cluster}: {ch.from_stage.value} -> {ch.to_stage.value} ({ch.reason})"
                for ch in learning.stage_changes
            )
            or "none"
        ),
        *(f"- note: {note}" for note in learning.notes),
        "",
        f"While the future ran, operators audited {s.audits} unattended steps ({s.audits_corrected} found wrong), "
        f"worked every step of the exploration holdout ({s.deferrals_by_reason.get('exploration', 0)} steps that "
        "would have run), and "
        f"the learning loop ran {len(result.relearning)} more times: "
        + (
            "; ".join(
                f"{ch.business_cluster}: {ch.from_stage.value} -> {ch.to_stage.value} ({ch.reason})"
                for report in result.relearning
                for ch in report.stage_changes
            )
            or "no stage change"
        )
        + ".",
        "",
        "## Selective stage",
        "",
        f"{s.sessions} sessions, {s.steps} steps: {s.steps_executed} executed unattended, {s.steps_deferred} deferred "
        f"({', '.join(f'{k} {v}' for k, v in sorted(s.deferrals_by_reason.items()))}). "
        f"{s.automation_errors} executed steps differed from what the operator did. Operator time "
        f"{s.operator_time_s / 3600:.1f} h against {s.baseline_time_s / 3600:.1f} h all-manual.",
        "",
        "## Time to autonomy",
        "",
        "| copilot sessions | feedback examples | certified coverage |",
        "|---|---|---|",
        *[f"| {p.sessions} | {p.examples} | {pct(p.certified_coverage)} |" for p in result.curve.points],
        "",
        "![time to autonomy](time_to_autonomy.png)",
        "",
    ]
    return finish_report(lines, result.phase_seconds, out_dir)
