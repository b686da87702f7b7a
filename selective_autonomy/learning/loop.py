"""The learning loop of one process: gather the evidence, plan, apply.

Each run reads a bounded window (the newest ``learning.window_feedback`` records of the process,
plus the few judged unattended steps since a cluster went selective), so its cost does not grow
with the store. :meth:`LearningLoop.run` with ``retrain=False`` only runs the precision monitor:
cheap enough to follow every audit. A process with no policy in service has nothing to retrain or
certify: its one step is :meth:`LearningLoop.first_policy`, from the recorded traces
(:mod:`selective_autonomy.learning.first_policy`), which a full run takes for it.

Every run publishes only over the pointer revision it planned on; when a person (a hand control,
a deploy) or another publisher changed the pointer meanwhile, it plans again on the new one (at
most ``PLAN_ATTEMPTS`` times), so nothing set while it planned is overwritten.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from selective_autonomy.config import LearningSettings
from selective_autonomy.inference.registry import ModelRegistry, PointerChanged, ServicePointer
from selective_autonomy.learning.apply import LearningReport, StageListener, apply_plan
from selective_autonomy.learning.evidence import critic_examples, monitor_outcomes, policy_examples
from selective_autonomy.learning.first_policy import (
    FirstPolicyInput,
    PolicyTrainer,
    embedded_trainer,
    plan_first_policy,
)
from selective_autonomy.learning.plan import plan_learning
from selective_autonomy.learning.plan_records import LearningInput, LearningPlan
from selective_autonomy.learning.recorded import case_completion, cases_from_recorded
from selective_autonomy.learning.step_times import StepTimes
from selective_autonomy.schemas.event_parts import Stage, utc_now
from selective_autonomy.store.repository import FeedbackStore

log = logging.getLogger(__name__)

PLAN_ATTEMPTS = 3
"""Plans made per run when the pointer keeps changing under it (each attempt re-reads it)."""


class LearningLoop:
    """Gathers, plans and applies the learning runs of the processes of one models directory.

    :param clock: the time a run plans at, recorded as when a promotion was proposed
        (``learning.promotion = confirmed``); default now, UTC.
    :param times: where every run adds the seconds of its steps (store reads, policy update, critic
        choice, certification, publishing); default a fresh one, read it as ``loop.times``.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        store: FeedbackStore,
        config: LearningSettings | None = None,
        on_stage_changes: StageListener | None = None,
        trainer: PolicyTrainer = embedded_trainer,
        clock: Callable[[], datetime] = utc_now,
        times: StepTimes | None = None,
    ) -> None:
        self.registry = registry
        self.store = store
        self.config = config or LearningSettings()
        self.on_stage_changes = on_stage_changes
        self.trainer = trainer
        self.clock = clock
        self.times = times or StepTimes()

    def gather(self, process_id: str, *, retrain: bool = True) -> LearningInput:
        schema, pointer = self.registry.schema(process_id), self.registry.pointer(process_id)
        since = min(pointer.selective_since.values(), default=None)
        outcomes = []
        if since is not None:
            with self.times.step("judged_unattended") as step:
                judged = self.store.judged_unattended(process_id, since)
                step.rows += len(judged)
            outcomes = monitor_outcomes(judged)
        if not retrain:
            return LearningInput(schema=schema, pointer=pointer, outcomes=outcomes, planned_at=self.clock())
        models = self.registry.load(process_id)
        with self.times.step("feedback_with_context") as step:
            rows = self.store.feedback_with_context(process_id=process_id, newest=self.config.window_feedback)
            step.rows += len(rows)
        meta = getattr(models.critic, "meta", None)
        fitted_until: datetime | None = getattr(meta, "train_to", None)
        return LearningInput(
            schema=models.schema,
            pointer=models.pointer,
            models=models,
            examples=critic_examples(rows),
            policy_examples=policy_examples(rows),
            outcomes=outcomes,
            critic_fitted_until=fitted_until,
            feedback_read=len(rows),
            planned_at=self.clock(),
        )

    def plan(self, process_id: str, *, retrain: bool = True) -> tuple[LearningInput, LearningPlan]:
        with self.times.step("gather"):
            evidence = self.gather(process_id, retrain=retrain)
        return evidence, plan_learning(evidence, self.config, retrain=retrain, times=self.times)

    def gather_first_policy(self, process_id: str) -> FirstPolicyInput:
        """The trace evidence of a process with no policy: a bounded count of its complete cases, and
        the newest ``learning.window_cases`` of them once there are enough."""
        schema, pointer = self.registry.schema(process_id), self.registry.pointer(process_id)
        if pointer.policy is not None:
            return FirstPolicyInput(schema=schema, pointer=pointer, complete_cases=0)
        completion = case_completion(self.config)
        needed = self.config.first_policy_cases
        complete = self.store.count_complete_cases(process_id, completion, at_most=needed)
        if complete < needed:
            return FirstPolicyInput(schema=schema, pointer=pointer, complete_cases=complete)
        sessions = self.store.recorded_cases(process_id, completion, newest=self.config.window_cases)
        return FirstPolicyInput(
            schema=schema, pointer=pointer, complete_cases=complete, cases=cases_from_recorded(sessions)
        )

    def first_policy(self, process_id: str) -> LearningReport:
        """Train, serve and stage a process's first policy once enough traces are recorded; otherwise
        change nothing (the report's notes say what it waits for). Cheap until then: a bounded count.

        With a policy in service, what recorded traces can still change is a cluster left in
        ``logging`` by a hand control when the policy went in (a pause holds ``logging ->
        copilot``, :meth:`~selective_autonomy.inference.registry.ServicePointer.hand_hold`): once
        nothing holds it, a monitor-only run moves it, since a cluster in logging gets no feedback
        to start one."""
        return self._planned(process_id, lambda: self._first_policy_once(process_id))

    def run(self, process_id: str, *, retrain: bool = True) -> LearningReport:
        return self._planned(process_id, lambda: self._run_once(process_id, retrain=retrain))

    def _run_once(self, process_id: str, *, retrain: bool) -> LearningReport:
        if retrain and self.registry.pointer(process_id).policy is None:
            # Without a policy there is nothing to retrain or certify (feedback can still arrive:
            # operators answer model_unavailable deferrals); the one step left is a first policy.
            return self._first_policy_once(process_id)
        evidence, plan = self.plan(process_id, retrain=retrain)
        with self.times.step("apply_plan"):
            return apply_plan(
                plan,
                self.registry,
                self.store,
                self.on_stage_changes,
                feedback_read=evidence.feedback_read,
                retrained=retrain,
            )

    def _first_policy_once(self, process_id: str) -> LearningReport:
        pointer = self.registry.pointer(process_id)
        if pointer.policy is not None and self._logging_released(process_id, pointer):
            return self._run_once(process_id, retrain=False)
        evidence = self.gather_first_policy(process_id)
        plan = plan_first_policy(evidence, self.config, self.trainer)
        return apply_plan(
            plan,
            self.registry,
            self.store,
            self.on_stage_changes,
            retrained=bool(plan.artefacts),
            trace_cases=len(evidence.cases),
        )

    def _logging_released(self, process_id: str, pointer: ServicePointer) -> bool:
        """Whether a cluster is in logging with a policy in service and no hand control holds it there."""
        clusters = (c.id for c in self.registry.schema(process_id).business_clusters)
        return any(pointer.stage(c) is Stage.logging and pointer.hand_hold(c, Stage.copilot) is None for c in clusters)

    def _planned(self, process_id: str, attempt: Callable[[], LearningReport]) -> LearningReport:
        for number in range(1, PLAN_ATTEMPTS + 1):
            try:
                return attempt()
            except PointerChanged as exc:
                # A person (or another publisher) changed the pointer while this run planned: plan
                # again on what is in service now. Artefacts the stale plan wrote stay unreferenced.
                if number == PLAN_ATTEMPTS:
                    raise
                log.info("%s: %s; planning again", process_id, exc)
        raise AssertionError("unreachable")
