"""The from-zero demo's report: the timeline as Markdown, the operators' share as a PNG, the raw numbers as JSON."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from selective_autonomy.demo.from_zero import FromZeroResult
from selective_autonomy.demo.report import audit_estimate, finish_report, pct, precision_line, start_report
from selective_autonomy.demo.timeline import Milestone

LABELS = {
    Milestone.logging: "logging",
    Milestone.first_policy: "first policy",
    Milestone.copilot: "copilot",
    Milestone.first_certificate: "first certificate",
    Milestone.selective: "selective",
}
COLOURS = {"logging": "#999999", "copilot": "#e0a030", "selective": "#2a7ab0"}


def _num(value: float | int | None, fmt: str = "{:,}") -> str:
    return "not reached" if value is None else fmt.format(value)


def certified_vs_realised(result: FromZeroResult) -> str:
    """One line for the console: what was certified next to what the executed steps realised."""
    return precision_line(result.replay, result.config.target_precision, result.config.confidence)


def timeline_table(result: FromZeroResult) -> list[str]:
    """The timeline as a Markdown table: each stage of the way in sessions, log days and wall seconds."""
    lines = [
        "| stage | session | day of the log | wall s | what happened |",
        "|---|---|---|---|---|",
    ]
    for entry in result.timeline.entries:
        lines.append(
            f"| {LABELS[entry.milestone]} | {_num(entry.session)} | {_num(entry.log_day, '{:.0f}')} | "
            f"{_num(entry.wall_s, '{:.0f}')} | {entry.detail} |"
        )
    selective = result.timeline.entry(Milestone.selective).wall_s
    for move in result.timeline.moves:
        if selective is not None and move.wall_s > selective:  # what the loop did once it was selective
            lines.append(
                f"| then: {move.from_stage.value} -> {move.to_stage.value} | {move.session:,} | "
                f"{_num(move.log_day, '{:.0f}')} | {move.wall_s:.0f} | {move.reason} |"
            )
    return lines


def _plot_share(result: FromZeroResult, path: Path) -> None:
    """The operators' share of the steps per window of sessions, against sessions and against log days,
    with the stages of the way marked."""
    points = result.timeline.share
    fig, axes = plt.subplots(2, 1, figsize=(7.6, 5.6))
    for ax, unit in zip(axes, ("session", "log_day"), strict=True):
        xs = [float(p.last_session if unit == "session" else p.log_day) for p in points]
        starts = [0.0, *xs[:-1]]
        ax.step(xs, [p.operator_share for p in points], where="pre", color="#333333", linewidth=1.4)
        for left, right, p in zip(starts, xs, points, strict=True):
            ax.axvspan(left, right, color=COLOURS.get(p.stage, "#cccccc"), alpha=0.2, lw=0)
        for k, entry in enumerate(result.timeline.entries):
            at = entry.session if unit == "session" else entry.log_day
            if at is None or entry.milestone is Milestone.logging:
                continue
            ax.axvline(at, color="#555555", linestyle=":", linewidth=1)
            # Staggered heights: the milestones of a run often come close together.
            ax.text(
                at,
                0.06 + 0.17 * (k - 1),
                f" {LABELS[entry.milestone]}",
                fontsize=7,
                ha="left",
                va="bottom",
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.7, "pad": 1},
            )
        ax.set_ylim(0, 1.0)
        ax.set_xlim(0, max(xs, default=1.0))
        ax.set_ylabel("operators' share")
        ax.set_xlabel(
            f"live sessions (windows of {result.config.share_window}; shading: stage of most steps)"
            if unit == "session"
            else "day of the log"
        )
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(result: FromZeroResult, out_dir: Path) -> Path:
    """Write ``report.json``, ``operator_share.png`` and ``report.md`` into ``out_dir``; return the Markdown."""
    start_report(result, out_dir)
    _plot_share(result, out_dir / "operator_share.png")
    r, t, c = result.replay, result.timeline, result.config
    first = result.first_policy
    selective = t.by_stage.get("selective")
    tail = t.share[-10:]
    changed = [
        run
        for run in t.learning_runs
        if run.certified_coverage is not None or run.policy_promoted or run.critic_promoted or run.stage_changes
    ]
    lines = [
        f"# From zero to selective on `{Path(result.log).name}`",
        "",
        f"One process schema (`{result.process_id}`) and an empty models directory; {result.cases} recorded cases "
        f"({result.log_days:.0f} days of the log) replayed live in their own order"
        + (f", one day of the log every {c.day_s:g} s" if c.day_s else "")
        + ", simulated operators working every step the system gives them. Everything below was done by the "
        "worker: the trace recorder, the learning loop (first policy after "
        f"`learning.first_policy_cases` = {c.first_policy_cases} complete recorded cases), the gate.",
        "",
        "## Timeline",
        "",
        *timeline_table(result),
        "",
        "session: how many live sessions had begun when it happened (the first step decided in that stage, or "
        "the learning loop's publication); day: the log day of the newest of them, counted from the first "
        "session's start; wall s: seconds since the sessions started.",
        "",
        "![operators' share of steps](operator_share.png)",
        "",
        "| steps decided in | sessions | steps | executed unattended | worked by operators | operators' share |",
        "|---|---|---|---|---|---|",
        *[
            f"| {stage} | {s.sessions:,} | {s.steps:,} | {s.executed:,} | {s.deferred:,} | "
            f"{pct(s.deferred / s.steps if s.steps else None)} |"
            for stage, s in t.by_stage.items()
        ],
        "",
        f"Operators' share of the steps in the last {len(tail) * c.share_window:,} sessions: "
        f"{pct(sum(p.operator_steps for p in tail) / max(1, sum(p.steps for p in tail)))}.",
        "",
        "## Precision of executed steps",
        "",
        f"Certified: >= {c.target_precision:.0%} at {c.confidence:.0%} confidence, per action type. Realised: "
        f"{pct(r.precision)} of {r.steps_executed:,} unattended steps ({r.automation_errors} differed from what "
        f"the operator did); audits' estimate {pct(audit_estimate(r))} from {r.audits} audits "
        f"({r.audits_corrected} found wrong). Coverage in the selective stage: "
        + (pct(selective.executed / selective.steps) if selective and selective.steps else "n/a")
        + ".",
        "",
        "## The first policy",
        "",
        (
            f"`{first.version}` ({first.meta.kind}), written by the learning loop to `{first.path}`: trained on "
            f"{first.meta.train_cases} recorded cases ({first.meta.train_examples} steps) from the trace table, "
            f"top-1 {first.meta.metrics.get('trace_top1', 0.0):.1%} on the newest "
            f"{first.meta.metrics.get('trace_eval_cases', 0.0):.0f}. Recorded in the store's model versions by the "
            f"loop: {'yes' if first.recorded_by_loop else 'no'}."
            if first
            else "No first policy was trained."
        ),
        f"The trace recorder stored {result.recorded_states:,} states; {result.complete_cases:,} complete cases at "
        "the end. Changes made by hand: " + ("; ".join(result.service_changes) or "none") + ".",
        "",
        "## Learning runs",
        "",
        f"The runs that certified, changed a model or moved a stage ({len(changed)} of {len(t.learning_runs)}; "
        "the others found every certificate current: all are in report.json).",
        "",
        "| wall s | sessions begun | day | critic (examples) | certified coverage | policy | stage changes |",
        "|---|---|---|---|---|---|---|",
        *[
            f"| {run.wall_s:.0f} | {run.sessions_begun:,} | {_num(run.log_day, '{:.0f}')} | {run.critic} "
            f"({run.critic_examples:,}) | {pct(run.certified_coverage)} | "
            f"{'new: ' if run.policy_promoted else ''}{run.policy_version} | "
            f"{'; '.join(ch.split(' (')[0] for ch in run.stage_changes) or '-'} |"
            for run in changed
        ],
        "",
        "Stage history (the store): ",
        "",
        *[f"- {line}" for line in result.stage_history],
        "",
        f"Live run: {r.summary()}",
        "",
    ]
    return finish_report(lines, result.phase_seconds, out_dir)
