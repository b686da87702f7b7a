"""Recorded UI traces as training cases: the store's trace table read back in the native trace format.

A recorded session is the sequence of ``UIStateChanged`` a platform sent for it. Each state an
operator's own action produced (``actor`` operator, ``last_action`` set) gives one step: the state
recorded just before it (by state version) is the screen the operator saw, its ``last_action`` is
what they did. That is exactly an importer's :class:`~selective_autonomy.traces.format.TraceStep`,
so a policy trains on live traces as it does on an imported log.

Which sessions are read at all (complete cases: closed by an ending action, or idle) is the store's
:class:`~selective_autonomy.store.models.CaseCompletion`; a closed case ends with its ending step
(``Case.ended``), an idle one does not, as importers leave a case still open at export.

Steps executed by the system (``actor`` system with ``last_action``) are not steps here: a policy
that learned from its own unattended actions would reinforce itself.

Retraining hook: the first policy is trained here from the table alone. A later retraining can read
the operator cases recorded since its policy's ``meta.train_to`` (``FeedbackStore.recorded_cases``
with ``since``) and pass :func:`trace_examples` of them, together with the operators' corrections
(``learning.evidence.policy_examples``), to ``EmbeddedPolicy.updated_with``: both are endorsed
(state, action) pairs. ``learning.policy_update`` uses the corrections only, today.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from selective_autonomy.config import LearningSettings
from selective_autonomy.schemas.event_parts import Action
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.store.models import CaseCompletion, RecordedSession
from selective_autonomy.traces.format import Case, TraceStep


def case_completion(config: LearningSettings) -> CaseCompletion:
    """The settings' definition of a complete case."""
    return CaseCompletion(ending_actions=frozenset(config.trace_ending_actions), idle_s=config.trace_idle_s)


def case_from_recorded(session: RecordedSession) -> Case | None:
    """The case of one recorded session; None when no operator step has a recorded state before it.

    States are paired by version order, not by version arithmetic: a platform's revision counter may
    skip numbers, so the state recorded just before an operator's state is the one they acted on.
    A time that runs backwards (clocks of two platform nodes) is held at that of the screen acted on
    or of the previous step, whichever is later, since a case's steps are ordered in time.
    """
    states = sorted(session.states, key=lambda s: s.state_version)
    if not states:
        return None
    started = states[0].timestamp
    steps: list[TraceStep] = []
    for before, after in pairwise(states):
        if not after.operator_step or after.last_action is None:
            continue
        earliest = max(steps[-1].timestamp if steps else started, before.timestamp)
        steps.append(
            TraceStep(state=before.ui_state, action=after.last_action, timestamp=max(after.timestamp, earliest))
        )
    if not steps:
        return None
    return Case(
        case_id=session.session_id,
        process_id=session.process_id,
        business_cluster=states[0].business_cluster,
        started_at=started,
        steps=steps,
        ended=session.closed,
    )


def cases_from_recorded(sessions: Iterable[RecordedSession]) -> list[Case]:
    """The cases of recorded sessions, in the order given (sessions without a usable step left out)."""
    return [case for case in map(case_from_recorded, sessions) if case is not None]


def recorded_steps(cases: Sequence[Case]) -> int:
    return sum(len(case.steps) for case in cases)


@dataclass(frozen=True)
class TraceExample:
    """An operator's own recorded step as an endorsed (state, action) pair
    (:class:`~selective_autonomy.inference.protocol.EndorsedExample`)."""

    event: UIStateChanged
    action: Action


def trace_examples(cases: Iterable[Case]) -> list[TraceExample]:
    """Every step of the cases as the state event before it and the action taken, for a policy update."""
    return [TraceExample(case.state_event(i), step.action) for case in cases for i, step in enumerate(case.steps)]
