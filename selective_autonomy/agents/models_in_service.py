"""The models a worker decides with, hot-reloaded when a new version is published.

A reload that fails (half-copied files, a model for another schema) keeps the version already in
service and logs why; the decide path never sees a partly loaded process. What the new pointer
takes away is applied all the same: its pauses, and any stage lower than the one in service (a
person's kill switch or demotion must not wait for a model that does not load). A pointer that
names no policy is not a failure but a decision (the process's schema was replaced, which voids
its models): the models loaded before are dropped and its states go to an operator.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from selective_autonomy.agents.decisions import DecisionEngine
from selective_autonomy.config import DEFAULT_TOP_K
from selective_autonomy.inference.registry import (
    STAGE_ORDER,
    ModelRegistry,
    NoPolicyInService,
    ProcessModels,
    ServicePointer,
)
from selective_autonomy.schemas.event_parts import Stage

log = logging.getLogger(__name__)

DEFAULT_STAGE_CLUSTER = "*"
"""How a process's default stage is named among its clusters: every cluster without a stage of its own."""

StageListener = Callable[[str, list[str], list[str]], None]
"""Called with a process, its clusters (:data:`DEFAULT_STAGE_CLUSTER` included) and those demoted
whenever the pointer in service changes."""


class ModelsInService:
    """The models of every process in the models directory, reloaded when a pointer changes.

    :param on_stages: told the stages of every pointer that comes into service (the worker's
        metrics count demotions from it).
    """

    def __init__(
        self, registry: ModelRegistry, top_k: int = DEFAULT_TOP_K, on_stages: StageListener | None = None
    ) -> None:
        self.registry = registry
        self.top_k = top_k
        self.on_stages = on_stages
        self._models: dict[str, ProcessModels] = {}
        self._seen: dict[str, tuple[int, int]] = {}
        self.engine = DecisionEngine({}, top_k=top_k)
        self.load_errors: dict[str, str] = {}

    def refresh(self) -> list[str]:
        """Load what changed since the last call; return the processes (re)loaded."""
        changed: list[str] = []
        restricted = False
        unavailable_before = dict(self.load_errors)
        for process_id in self.registry.processes():
            revision = self.registry.revision(process_id)
            if self._seen.get(process_id) == revision:
                continue
            try:
                loaded = self.registry.load(process_id)
            except NoPolicyInService as exc:
                # Keeping the old models would keep deciding (even executing) with models built
                # for a schema that is no longer the process's.
                dropped = self._models.pop(process_id, None) is not None
                self.load_errors[process_id] = str(exc)
                self._seen[process_id] = revision  # nothing to retry until a policy is published
                if dropped:
                    changed.append(process_id)
                continue
            except Exception as exc:  # keep serving the previous version
                self.load_errors[process_id] = f"{type(exc).__name__}: {exc}"
                log.warning("could not load models for %s: %s", process_id, exc)
                restricted = self._restrict(process_id) or restricted
                continue
            self._put(process_id, loaded)
            self._seen[process_id] = revision
            self.load_errors.pop(process_id, None)
            changed.append(process_id)
        if changed or restricted or self.load_errors != unavailable_before:
            # A process that never loaded is still known: its states go to an operator.
            unavailable = {p: why for p, why in self.load_errors.items() if p not in self._models}
            self.engine = DecisionEngine(dict(self._models), top_k=self.top_k, unavailable=unavailable)
        if changed:
            log.info("models in service updated for %s", ", ".join(changed))
        return changed

    def _restrict(self, process_id: str) -> bool:
        """Apply the pauses and demotions of a pointer whose models did not load to the version in
        service; True when that changed what it may run."""
        previous = self._models.get(process_id)
        if previous is None:  # never loaded: every state goes to an operator anyway
            return False
        try:
            newer = self.registry.pointer(process_id)
        except Exception:  # unreadable: nothing to apply
            return False
        restricted = safer(previous.pointer, newer)
        if restricted == previous.pointer:
            return False
        self._put(process_id, replace(previous, pointer=restricted))
        log.warning(
            "%s: pauses and demotions of revision %d applied to the models in service", process_id, newer.revision
        )
        return True

    def _put(self, process_id: str, models: ProcessModels) -> None:
        previous = self._models.get(process_id)
        self._models[process_id] = models
        if self.on_stages is not None:
            pointer = models.pointer
            demoted = demoted_clusters(previous.pointer, pointer) if previous is not None else []
            self.on_stages(process_id, [*sorted(pointer.stages), DEFAULT_STAGE_CLUSTER], demoted)

    def current(self) -> DecisionEngine:
        return self.engine

    def versions(self) -> dict[str, dict[str, str | int]]:
        return {
            process_id: {
                "policy": models.policy.version,
                "critic": models.critic.version,
                "thresholds": models.pointer.thresholds.version,
                "revision": models.pointer.revision,
            }
            for process_id, models in self._models.items()
        }


def safer(serving: ServicePointer, newer: ServicePointer) -> ServicePointer:
    """``serving`` with the pauses of ``newer`` and, per cluster, the lower of the two stages."""
    clusters = set(serving.stages) | set(newer.stages)
    stages = {c: _lower(serving.stage(c), newer.stage(c)) for c in clusters}
    return serving.model_copy(
        update={
            "paused": newer.paused,
            "stages": stages,
            "default_stage": _lower(serving.default_stage, newer.default_stage),
        }
    )


def demoted_clusters(before: ServicePointer, after: ServicePointer) -> list[str]:
    """The clusters whose stage is lower in ``after`` than in ``before``;
    :data:`DEFAULT_STAGE_CLUSTER` when the default stage went down."""
    clusters = sorted(set(before.stages) | set(after.stages))
    demoted = [c for c in clusters if STAGE_ORDER[after.stage(c)] < STAGE_ORDER[before.stage(c)]]
    if STAGE_ORDER[after.default_stage] < STAGE_ORDER[before.default_stage]:
        demoted.append(DEFAULT_STAGE_CLUSTER)
    return demoted


def _lower(a: Stage, b: Stage) -> Stage:
    return a if STAGE_ORDER[a] <= STAGE_ORDER[b] else b
