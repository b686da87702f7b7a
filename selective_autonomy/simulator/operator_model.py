"""The simulated operator: how it answers a deferral, and how long its work takes.

Pure and deterministic, so it is unit-tested without Kafka.

* :class:`OperatorModel` answers a deferral against the recorded next action of the case: ``accepted``
  when the suggestion is the recorded action (canonical equality: type and arguments),
  ``acceptable_alternative`` when the suggestion's type is listed as an equivalent of the recorded
  type, else ``corrected`` with the recorded action. Optional noise (a wrong accept, a needless
  correction) draws from an RNG seeded by the model's seed and the step's key, so an answer does not
  depend on the order in which concurrent sessions reach the operator.
* :class:`HandlingTimeModel` prices operator work: per action type, the median gap between
  consecutive events of the training cases (each gap capped), plus an interruption cost when a
  deferral pulls the operator into a session. An unattended step costs no operator time unless it
  was wrong: then the operator is interrupted, undoes it (``undo_factor`` times the step's own
  time) and does the recorded step. The all-manual baseline pays the per-step time for every step.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from selective_autonomy.schemas.event_parts import Action, Verdict
from selective_autonomy.schemas.events import CopilotFeedback, OperatorDeferral
from selective_autonomy.traces.format import Case

DEFAULT_OPERATOR_ID = "sim-operator"


def same_action(a: Action | None, b: Action | None) -> bool:
    """Canonical equality: same type and same arguments (key order and int/float text aside)."""
    if a is None or b is None:
        return a is b
    return a.canonical_json() == b.canonical_json()


class OperatorConfig(BaseModel):
    """How the simulated operator judges suggestions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    operator_id: str = Field(default=DEFAULT_OPERATOR_ID, min_length=1)
    alternatives: dict[str, frozenset[str]] = Field(
        default_factory=dict,
        description="Recorded action type -> suggested action types the operator accepts as equivalent.",
    )
    wrong_accept_rate: float = Field(
        default=0.0, ge=0.0, le=1.0, description="P(accepting a suggestion that is neither right nor an alternative)."
    )
    needless_correction_rate: float = Field(
        default=0.0, ge=0.0, le=1.0, description="P(correcting a suggestion that equals the recorded action)."
    )
    seed: int = 0


@dataclass(frozen=True)
class OperatorAnswer:
    """The operator's verdict and the action it performed in the BPM.

    ``performed`` is the recorded action, except after a wrong accept (the suggestion ran).
    ``operator_action`` is what goes into the feedback: None when accepted.
    """

    verdict: Verdict
    performed: Action
    operator_action: Action | None
    noisy: bool = False


class OperatorModel:
    """Answers deferrals like an operator who knows what the recorded case did next."""

    def __init__(self, config: OperatorConfig | None = None) -> None:
        self.config = config or OperatorConfig()

    def _rng(self, key: str) -> random.Random:
        # A str seed is hashed with SHA-512 by ``random``: stable across runs and PYTHONHASHSEED.
        return random.Random(f"{self.config.seed}\x1f{key}")

    def accepts(self, executed: Action, recorded: Action) -> bool:
        """Whether an operator who did ``recorded`` would have accepted ``executed`` (no noise: the
        ground truth an unattended step is judged by)."""
        return same_action(executed, recorded) or executed.action_type in self.config.alternatives.get(
            recorded.action_type, ()
        )

    def answer(self, suggestion: Action | None, recorded: Action, key: str = "") -> OperatorAnswer:
        """The verdict on ``suggestion`` when the case recorded ``recorded`` as the next action.

        :param key: identifies the step (e.g. ``case_id/step``); with the seed it fixes the noise draws.
        """
        config = self.config
        draw = self._rng(key).random()
        if suggestion is not None and same_action(suggestion, recorded):
            if draw < config.needless_correction_rate:
                return OperatorAnswer(Verdict.corrected, recorded, recorded, noisy=True)
            return OperatorAnswer(Verdict.accepted, suggestion, None)
        if suggestion is not None and suggestion.action_type in config.alternatives.get(recorded.action_type, ()):
            return OperatorAnswer(Verdict.acceptable_alternative, recorded, recorded)
        if suggestion is not None and draw < config.wrong_accept_rate:
            return OperatorAnswer(Verdict.accepted, suggestion, None, noisy=True)
        return OperatorAnswer(Verdict.corrected, recorded, recorded)

    def feedback(self, deferral: OperatorDeferral, answer: OperatorAnswer, latency_ms: int) -> CopilotFeedback:
        """The ``CopilotFeedback`` for ``deferral``: its ids, scores and versions, and the answer."""
        return CopilotFeedback.for_answer(
            deferral,
            verdict=answer.verdict,
            operator_action=answer.operator_action,
            operator_id=self.config.operator_id,
            latency_ms=latency_ms,
        )


class InterruptionPolicy(StrEnum):
    """When a deferral costs a context switch."""

    every_deferral = "every_deferral"  # each deferral interrupts the operator
    handover = "handover"  # only the first deferral after the system worked alone (or the session's first)


DEFAULT_CAP_S = 900.0
DEFAULT_STEP_S = 60.0
DEFAULT_INTERRUPTION_S = 30.0


class HandlingTimeModel(BaseModel):
    """Operator seconds per step, by recorded action type."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    step_seconds: dict[str, float] = Field(default_factory=dict, description="Action type -> operator seconds.")
    default_step_s: float = Field(default=DEFAULT_STEP_S, ge=0.0, description="For action types never observed.")
    interruption_s: float = Field(default=DEFAULT_INTERRUPTION_S, ge=0.0, description="Context switch per deferral.")
    interruption: InterruptionPolicy = InterruptionPolicy.every_deferral
    undo_factor: float = Field(
        default=1.0, ge=0.0, description="Undoing a wrong unattended step takes this many times the step's own time."
    )

    def step_s(self, action_type: str) -> float:
        """Seconds an operator spends doing one step of this type by hand."""
        return self.step_seconds.get(action_type, self.default_step_s)

    def deferred_step_s(self, action_type: str, *, attending: bool = False) -> float:
        """Seconds a deferred step costs: the step plus the interruption it causes.

        :param attending: the operator handled this session's previous step (only matters with
            ``InterruptionPolicy.handover``, where no new context switch is charged then).
        """
        interrupted = self.interruption is InterruptionPolicy.every_deferral or not attending
        return self.step_s(action_type) + (self.interruption_s if interrupted else 0.0)

    def correction_s(self, action_type: str) -> float:
        """Seconds a wrong unattended step costs: the interruption, undoing it, and the recorded step
        (of type ``action_type``) done by hand."""
        return self.interruption_s + (1.0 + self.undo_factor) * self.step_s(action_type)

    def manual_case_s(self, case: Case) -> float:
        """The all-manual baseline of one case: the per-step time of every step, no interruptions."""
        return sum(self.step_s(step.action.action_type) for step in case.steps)

    @classmethod
    def from_cases(
        cls,
        cases: Iterable[Case],
        *,
        cap_s: float = DEFAULT_CAP_S,
        interruption_s: float = DEFAULT_INTERRUPTION_S,
        interruption: InterruptionPolicy = InterruptionPolicy.every_deferral,
        fallback_step_s: float = DEFAULT_STEP_S,
    ) -> HandlingTimeModel:
        """Estimate step times from the timestamps of (training) cases.

        A step's time is the gap from the previous step of its case to it, capped at ``cap_s``
        (a ticket waiting days for a customer is not operator work). The first step of a case has
        no previous event and is not observed. Each type gets the median of its gaps; types never
        observed get the median of all gaps (``fallback_step_s`` when there is none).

        :param cap_s: longest gap counted as work (default 900 s).
        :param interruption_s: context switch per deferral (default 30 s).
        """
        gaps: dict[str, list[float]] = {}
        for case in cases:
            for previous, step in zip(case.steps, case.steps[1:], strict=False):
                gap = min(cap_s, max(0.0, (step.timestamp - previous.timestamp).total_seconds()))
                gaps.setdefault(step.action.action_type, []).append(gap)
        every = [gap for values in gaps.values() for gap in values]
        return cls(
            step_seconds={action_type: float(statistics.median(values)) for action_type, values in gaps.items()},
            default_step_s=float(statistics.median(every)) if every else fallback_step_s,
            interruption_s=interruption_s,
            interruption=interruption,
        )


def alternatives_from_mapping(raw: Mapping[str, Iterable[str]]) -> dict[str, frozenset[str]]:
    """``{recorded_type: [acceptable types]}`` (as read from YAML/JSON) in the form the config holds."""
    return {str(recorded): frozenset(str(t) for t in acceptable) for recorded, acceptable in raw.items()}
