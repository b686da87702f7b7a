"""The from-zero demo's timeline: what each live session saw, and when the system moved.

Pure bookkeeping, unit-tested without a broker. :class:`SessionTracker` is the replay's decision
observer: it notes, per session, who did each step (the system executed it, or an operator after a
deferral) and in which stage. :func:`build_timeline` puts the learning loop's reports (each with
the wall time it arrived) next to those sessions and answers, for each stage of the way
(``logging -> first policy -> copilot -> first certificate -> selective``), after how many sessions
and how many days of the log's own traffic it came, and how the operators' share of the steps went
down over the sessions.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from selective_autonomy.learning.apply import LearningReport
from selective_autonomy.schemas.event_parts import Stage
from selective_autonomy.schemas.events import ActionExecuted
from selective_autonomy.simulator.sessions import DecisionRecord, SimSession

DAY_S = 86_400.0


class Milestone(StrEnum):
    logging = "logging"
    first_policy = "first_policy"
    copilot = "copilot"
    first_certificate = "first_certificate"
    selective = "selective"


MILESTONE_ORDER = tuple(Milestone)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class SessionRow:
    """One live session as the operators saw it: steps the system executed, steps deferred to an
    operator, and how many of its steps were decided in each stage."""

    index: int  # 0-based, in the order sessions got their first decision
    case_id: str
    log_day: float  # days from the earliest replayed case's start to this case's, in log time
    first_decision_s: float  # wall seconds from the tracker's start to the session's first decision
    executed: int = 0
    deferred: int = 0
    by_stage: Counter[str] = field(default_factory=Counter)


class SessionTracker:
    """The replay's decision observer (:data:`~selective_autonomy.simulator.sessions.DecisionObserver`).

    :param origin: log time of the earliest case replayed (log days count from it).
    :param clock: monotonic seconds (default ``time.monotonic``); ``started`` is when it was built.
    """

    def __init__(self, origin: datetime, clock: Callable[[], float] = time.monotonic) -> None:
        self.origin = origin
        self.clock = clock
        self.rows: dict[str, SessionRow] = {}
        self.first_in_stage: dict[str, float] = {}  # stage -> wall seconds of its first decided step
        self.restart()

    def restart(self) -> None:
        """Count wall time from now (the replay's start)."""
        self.started = self.clock()
        self.started_at = datetime.now(UTC)

    def elapsed(self) -> float:
        return self.clock() - self.started

    def elapsed_at(self, moment: datetime) -> float:
        """Wall seconds from the start to ``moment`` (a UTC time stamped by the system)."""
        return (moment - self.started_at).total_seconds()

    def __call__(self, session: SimSession, record: DecisionRecord) -> None:
        row = self.rows.get(session.session_id)
        if row is None:
            row = SessionRow(
                index=len(self.rows),
                case_id=session.case.case_id,
                log_day=(session.case.started_at - self.origin).total_seconds() / DAY_S,
                first_decision_s=self.elapsed(),
            )
            self.rows[session.session_id] = row
        if isinstance(record, ActionExecuted):
            row.executed += 1
            stage = Stage.selective.value
        else:
            row.deferred += 1
            stage = record.stage.value if record.stage is not None else "unknown"
        row.by_stage[stage] += 1
        self.first_in_stage.setdefault(stage, self.elapsed())

    def begun_by(self, wall_s: float) -> int:
        """Sessions that had their first decision at or before ``wall_s``."""
        return sum(row.first_decision_s <= wall_s for row in list(self.rows.values()))

    def sessions(self) -> list[SessionRow]:
        return sorted(self.rows.values(), key=lambda row: row.index)


class TimelineEntry(_Model):
    """When one stage of the way was reached."""

    milestone: Milestone
    session: int | None = Field(
        description="Sessions begun when it happened (the first step decided in that stage, or the learning loop's "
        "publication). None: not reached."
    )
    log_day: float | None = Field(description="Log day of the newest session begun then, from the first one's start.")
    wall_s: float | None = Field(description="Wall seconds from the replay's start.")
    detail: str = ""


class StageMove(_Model):
    """A stage change the learning loop published, placed on the timeline."""

    cluster: str
    from_stage: Stage
    to_stage: Stage
    session: int = Field(description="Sessions begun when it was published.")
    log_day: float | None
    wall_s: float
    reason: str


class LearningRun(_Model):
    """One learning-loop report that changed something, as the timeline reads it."""

    wall_s: float
    sessions_begun: int
    log_day: float | None
    policy_version: str
    policy_promoted: bool
    critic: str
    critic_version: str
    critic_promoted: bool
    trace_cases: int
    feedback: int
    critic_examples: int
    certified_coverage: float | None
    stage_changes: list[str]
    notes: list[str]


class SharePoint(_Model):
    """The operators' share of the steps over a window of consecutive sessions."""

    first_session: int = Field(description="1-based index of the window's first session.")
    last_session: int
    log_day: float = Field(description="Log day of the window's last session.")
    steps: int
    operator_steps: int
    operator_share: float
    stage: str = Field(description="The stage most of the window's steps were decided in.")


class StageSteps(_Model):
    sessions: int = Field(description="Sessions with at least one step decided in this stage.")
    steps: int
    executed: int
    deferred: int


class Timeline(_Model):
    entries: list[TimelineEntry]
    moves: list[StageMove] = Field(description="Every stage change of the loop, in order (demotions too).")
    learning_runs: list[LearningRun]
    share: list[SharePoint]
    by_stage: dict[str, StageSteps]
    sessions: int
    log_days: float

    def entry(self, milestone: Milestone) -> TimelineEntry:
        return next(e for e in self.entries if e.milestone is milestone)

    def reached(self) -> list[Milestone]:
        """Milestones reached, in the order they were reached (wall time; ties in the timeline's order)."""
        done = [(e.wall_s, i, e.milestone) for i, e in enumerate(self.entries) if e.wall_s is not None]
        return [milestone for *_, milestone in sorted(done)]


def _certified(report: LearningReport) -> float | None:
    calibration = report.calibration
    return calibration.certified_coverage() if calibration is not None else None


def build_timeline(
    rows: Sequence[SessionRow],
    first_in_stage: Mapping[str, float],
    reports: Sequence[tuple[float, LearningReport]],
    window: int = 50,
) -> Timeline:
    """The timeline of a live run.

    :param rows: the sessions (:meth:`SessionTracker.sessions`).
    :param first_in_stage: stage -> wall seconds of its first decided step (:attr:`SessionTracker.first_in_stage`).
    :param reports: the learning loop's reports, each with the wall seconds it was published at.
    :param window: sessions per point of the operator-share curve (default 50).
    """
    rows = sorted(rows, key=lambda row: row.index)
    starts = [row.first_decision_s for row in rows]

    def when(wall_s: float) -> tuple[int, float | None]:
        begun = [row for row in rows if row.first_decision_s <= wall_s]
        return len(begun), (max(row.log_day for row in begun) if begun else None)

    def entry(milestone: Milestone, wall_s: float | None, detail: str) -> TimelineEntry:
        if wall_s is None:
            return TimelineEntry(milestone=milestone, session=None, log_day=None, wall_s=None, detail="not reached")
        begun, day = when(wall_s)
        return TimelineEntry(
            milestone=milestone,
            session=max(begun, 1) if starts else None,
            log_day=None if day is None else round(day, 1),
            wall_s=round(wall_s, 1),
            detail=detail,
        )

    runs, moves = [], []
    for wall_s, report in reports:
        begun, day = when(wall_s)
        moves += [
            StageMove(
                cluster=c.business_cluster,
                from_stage=c.from_stage,
                to_stage=c.to_stage,
                session=begun,
                log_day=None if day is None else round(day, 1),
                wall_s=round(wall_s, 1),
                reason=c.reason,
            )
            for c in report.stage_changes
        ]
        runs.append(
            LearningRun(
                wall_s=round(wall_s, 1),
                sessions_begun=begun,
                log_day=None if day is None else round(day, 1),
                policy_version=report.policy_version,
                policy_promoted=report.policy_promoted,
                critic=report.critic,
                critic_version=report.critic_version,
                critic_promoted=report.critic_promoted,
                trace_cases=report.trace_cases,
                feedback=report.feedback,
                critic_examples=report.critic_examples,
                certified_coverage=_certified(report),
                stage_changes=[
                    f"{c.business_cluster}: {c.from_stage.value} -> {c.to_stage.value} ({c.reason})"
                    for c in report.stage_changes
                ],
                notes=report.notes,
            )
        )

    first_policy = next(((t, r) for t, r in reports if r.policy_promoted and r.trace_cases > 0), None)
    certificate = next(((t, r) for t, r in reports if (_certified(r) or 0.0) > 0.0), None)
    entries = [
        entry(
            Milestone.logging,
            first_in_stage.get(Stage.logging.value),
            "no policy: every step deferred to an operator, and recorded",
        ),
        entry(
            Milestone.first_policy,
            first_policy[0] if first_policy else None,
            first_policy[1].notes[0] if first_policy and first_policy[1].notes else "",
        ),
        entry(
            Milestone.copilot,
            first_in_stage.get(Stage.copilot.value),
            "every step a suggestion the operator accepts or corrects",
        ),
        entry(
            Milestone.first_certificate,
            certificate[0] if certificate else None,
            f"certified coverage {_certified(certificate[1]) or 0.0:.1%} of the calibration steps "
            f"({certificate[1].critic_examples} examples, critic {certificate[1].critic_version})"
            if certificate
            else "",
        ),
        entry(
            Milestone.selective,
            first_in_stage.get(Stage.selective.value),
            "the gate executes what it passes and defers the rest",
        ),
    ]

    share = []
    for start in range(0, len(rows), window):
        chunk = rows[start : start + window]
        decided = sum(row.executed + row.deferred for row in chunk)
        stages: Counter[str] = Counter()
        for row in chunk:
            stages.update(row.by_stage)
        share.append(
            SharePoint(
                first_session=chunk[0].index + 1,
                last_session=chunk[-1].index + 1,
                log_day=round(chunk[-1].log_day, 1),
                steps=decided,
                operator_steps=sum(row.deferred for row in chunk),
                operator_share=sum(row.deferred for row in chunk) / decided if decided else 0.0,
                stage=stages.most_common(1)[0][0] if stages else "none",
            )
        )

    by_stage: dict[str, StageSteps] = {}
    present = {name for row in rows for name in row.by_stage}
    for name in [*(s.value for s in Stage if s.value in present), *sorted(present - {s.value for s in Stage})]:
        steps = sum(row.by_stage.get(name, 0) for row in rows)
        # Only the selective stage executes: every executed step was decided there.
        executed = sum(row.executed for row in rows) if name == Stage.selective.value else 0
        by_stage[name] = StageSteps(
            sessions=sum(1 for row in rows if row.by_stage.get(name, 0) > 0),
            steps=steps,
            executed=executed,
            deferred=steps - executed,
        )
    return Timeline(
        entries=entries,
        moves=moves,
        learning_runs=runs,
        share=share,
        by_stage=by_stage,
        sessions=len(rows),
        log_days=round(max((row.log_day for row in rows), default=0.0), 1),
    )
