"""What a replay measured: raw counts gathered while sessions run, and the report derived from them.

:class:`ReplayTally` only counts; :meth:`ReplayTally.report` does all the arithmetic (rates, time
saved), so the arithmetic is unit-tested without a broker.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from selective_autonomy.schemas.event_parts import Action

MAX_EXAMPLES = 20


class AutomationError(BaseModel):
    """An unattended step whose action differs from the recorded one (a precision miss)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    session_id: str
    case_id: str
    step: int
    executed: Action
    recorded: Action


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


class ReplayReport(BaseModel):
    """Outcome of replaying recorded cases as live sessions against the decide agent.

    Rates are ``None`` where their denominator is zero (no executed step: no precision).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    sessions: int = Field(description="Sessions started (cases replayed).")
    sessions_completed: int = Field(description="Sessions that reached their last recorded step.")
    sessions_unattended: int = Field(
        description="Completed sessions that ran end to end without an operator: no deferral, no wrong step."
    )
    automation_rate: float | None = Field(description="sessions_unattended / sessions.")
    steps: int = Field(description="Steps of the replayed cases.")
    steps_decided: int = Field(description="Steps with a decision checked (executed + deferred).")
    steps_executed: int = Field(description="Steps executed unattended.")
    steps_deferred: int = Field(description="Steps deferred to the operator.")
    coverage: float | None = Field(description="steps_executed / steps_decided.")
    executed_correct: int = Field(description="Unattended steps equal to the recorded action.")
    precision: float | None = Field(description="executed_correct / steps_executed.")
    automation_errors: int = Field(description="Unattended steps that differ from the recorded action.")
    automation_error_examples: list[AutomationError] = Field(default_factory=list)
    deferrals_by_reason: dict[str, int] = Field(default_factory=dict)
    feedback: int = Field(description="CopilotFeedback records published (one per deferral).")
    feedback_by_verdict: dict[str, int] = Field(default_factory=dict)
    operator_noise: int = Field(default=0, description="Answers where the operator's noise flipped the verdict.")
    operator_time_s: float = Field(
        description="Operator seconds in sessions: deferred steps and undone wrong unattended ones, with interruptions."
    )
    baseline_time_s: float = Field(description="Operator seconds if every step of every case were manual.")
    handling_time_reduction: float | None = Field(description="1 - operator_time_s / baseline_time_s.")
    deferrals_per_operator_hour: float | None = Field(description="steps_deferred per hour of operator time.")
    stalled_sessions: int = Field(description="Sessions that got no decision within the timeout.")
    stalled_session_ids: list[str] = Field(default_factory=list)
    duplicates_ignored: int = Field(description="Redelivered decisions (same action_id / deferral_id) ignored.")
    audits: int = Field(default=0, description="Unattended steps an operator reviewed afterwards (audit feedback).")
    audits_corrected: int = Field(default=0, description="Audited steps the operator found wrong.")
    audit_time_s: float = Field(default=0.0, description="QA seconds spent on audits (not in operator_time_s).")
    ignored_records: dict[str, int] = Field(
        default_factory=dict, description="Other records not used, by why: foreign session, late, out_of_order, ..."
    )
    wall_time_s: float
    sessions_per_s: float | None
    steps_per_s: float | None = Field(description="steps_decided per second of wall time.")

    def summary(self) -> str:
        """One line for logs and the CLI."""

        def pct(value: float | None) -> str:
            return "n/a" if value is None else f"{100 * value:.1f}%"

        return (
            f"sessions={self.sessions} completed={self.sessions_completed} stalled={self.stalled_sessions} "
            f"automation={pct(self.automation_rate)} steps={self.steps} executed={self.steps_executed} "
            f"deferred={self.steps_deferred} coverage={pct(self.coverage)} precision={pct(self.precision)} "
            f"handling-time reduction={pct(self.handling_time_reduction)} "
            f"throughput={self.sessions_per_s or 0:.1f} sessions/s {self.steps_per_s or 0:.1f} steps/s"
        )


@dataclass
class ReplayTally:
    """Counters a replay updates as decisions come in."""

    sessions: int = 0
    sessions_completed: int = 0
    sessions_unattended: int = 0
    steps: int = 0
    steps_executed: int = 0
    steps_deferred: int = 0
    executed_correct: int = 0
    automation_errors: list[AutomationError] = field(default_factory=list)
    automation_error_count: int = 0
    deferrals_by_reason: Counter[str] = field(default_factory=Counter)
    feedback_by_verdict: Counter[str] = field(default_factory=Counter)
    operator_noise: int = 0
    operator_time_s: float = 0.0
    baseline_time_s: float = 0.0
    stalled: list[str] = field(default_factory=list)
    duplicates: int = 0
    audits: int = 0
    audits_corrected: int = 0
    audit_time_s: float = 0.0
    ignored: Counter[str] = field(default_factory=Counter)

    def on_automation_error(self, error: AutomationError) -> None:
        self.automation_error_count += 1
        if len(self.automation_errors) < MAX_EXAMPLES:
            self.automation_errors.append(error)

    def report(self, wall_time_s: float) -> ReplayReport:
        decided = self.steps_executed + self.steps_deferred
        operator_hours = self.operator_time_s / 3600.0
        reduction = _ratio(self.operator_time_s, self.baseline_time_s)
        return ReplayReport(
            sessions=self.sessions,
            sessions_completed=self.sessions_completed,
            sessions_unattended=self.sessions_unattended,
            automation_rate=_ratio(self.sessions_unattended, self.sessions),
            steps=self.steps,
            steps_decided=decided,
            steps_executed=self.steps_executed,
            steps_deferred=self.steps_deferred,
            coverage=_ratio(self.steps_executed, decided),
            executed_correct=self.executed_correct,
            precision=_ratio(self.executed_correct, self.steps_executed),
            automation_errors=self.automation_error_count,
            automation_error_examples=list(self.automation_errors),
            deferrals_by_reason=dict(sorted(self.deferrals_by_reason.items())),
            feedback=sum(self.feedback_by_verdict.values()),
            feedback_by_verdict=dict(sorted(self.feedback_by_verdict.items())),
            operator_noise=self.operator_noise,
            operator_time_s=self.operator_time_s,
            baseline_time_s=self.baseline_time_s,
            handling_time_reduction=None if reduction is None else 1.0 - reduction,
            deferrals_per_operator_hour=_ratio(self.steps_deferred, operator_hours),
            stalled_sessions=len(self.stalled),
            stalled_session_ids=self.stalled[:MAX_EXAMPLES],
            duplicates_ignored=self.duplicates,
            audits=self.audits,
            audits_corrected=self.audits_corrected,
            audit_time_s=self.audit_time_s,
            ignored_records=dict(sorted(self.ignored.items())),
            wall_time_s=wall_time_s,
            sessions_per_s=_ratio(self.sessions_completed, wall_time_s),
            steps_per_s=_ratio(decided, wall_time_s),
        )
