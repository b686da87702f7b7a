"""The learning loop of one process: gather the evidence, plan, apply.

Each run reads a bounded window (the newest ``learning.window_feedback`` records of the process,
plus the few judged unattended steps since a cluster went selective), so its cost does not grow
with the store. :meth:`LearningLoop.run` with ``retrain=False`` only runs the precision monitor:
cheap enough to follow every audit.
"""

from __future__ import annotations

import logging
from datetime import datetime

from selective_autonomy.config import LearningSettings
from selective_autonomy.inference.registry import ModelRegistry, PointerChanged
from selective_autonomy.learning.apply import LearningReport, StageListener, apply_plan
from selective_autonomy.learning.evidence import critic_examples, monitor_outcomes, policy_examples
from selective_autonomy.learning.plan import LearningInput, LearningPlan, plan_learning
from selective_autonomy.store.repository import FeedbackStore

log = logging.getLogger(__name__)

PLAN_ATTEMPTS = 3
"""Plans made per run when the pointer keeps changing under it (each attempt re-reads it)."""


class LearningLoop:
    def __init__(
        self,
        registry: ModelRegistry,
        store: FeedbackStore,
        config: LearningSettings | None = None,
        on_stage_changes: StageListener | None = None,
    ) -> None:
        self.registry = registry
        self.store = store
        self.config = config or LearningSettings()
        self.on_stage_changes = on_stage_changes

    def gather(self, process_id: str, *, retrain: bool = True) -> LearningInput:
        schema, pointer = self.registry.schema(process_id), self.registry.pointer(process_id)
        since = min(pointer.selective_since.values(), default=None)
        outcomes = monitor_outcomes(self.store.judged_unattended(process_id, since)) if since is not None else []
        if not retrain:
            return LearningInput(schema=schema, pointer=pointer, outcomes=outcomes)
        models = self.registry.load(process_id)
        rows = self.store.feedback_with_context(process_id=process_id, newest=self.config.window_feedback)
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
        )

    def plan(self, process_id: str, *, retrain: bool = True) -> tuple[LearningInput, LearningPlan]:
        evidence = self.gather(process_id, retrain=retrain)
        return evidence, plan_learning(evidence, self.config, retrain=retrain)

    def run(self, process_id: str, *, retrain: bool = True) -> LearningReport:
        for attempt in range(1, PLAN_ATTEMPTS + 1):
            evidence, plan = self.plan(process_id, retrain=retrain)
            try:
                return apply_plan(
                    plan,
                    self.registry,
                    self.store,
                    self.on_stage_changes,
                    feedback_read=evidence.feedback_read,
                    retrained=retrain,
                )
            except PointerChanged as exc:
                # A person (or another publisher) changed the pointer while this run planned: plan
                # again on what is in service now. Artefacts the stale plan wrote stay unreferenced.
                if attempt == PLAN_ATTEMPTS:
                    raise
                log.info("%s: %s; planning again", process_id, exc)
        raise AssertionError("unreachable")
