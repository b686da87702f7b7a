"""The models a worker decides with, hot-reloaded when a new version is published.

A reload that fails (half-copied files, a model for another schema) keeps the version already in
service and logs why; the decide path never sees a partly loaded process. A pointer that names no
policy is not a failure but a decision (the process's schema was replaced, which voids its models):
the models loaded before are dropped and its states go to an operator.
"""

from __future__ import annotations

import logging

from selective_autonomy.agents.decisions import DecisionEngine
from selective_autonomy.inference.registry import ModelRegistry, NoPolicyInService, ProcessModels

log = logging.getLogger(__name__)


class ModelsInService:
    def __init__(self, registry: ModelRegistry, top_k: int = 5) -> None:
        self.registry = registry
        self.top_k = top_k
        self._models: dict[str, ProcessModels] = {}
        self._seen: dict[str, tuple[int, int]] = {}
        self.engine = DecisionEngine({}, top_k=top_k)
        self.load_errors: dict[str, str] = {}

    def refresh(self) -> list[str]:
        """Load what changed since the last call; return the processes (re)loaded."""
        changed: list[str] = []
        unavailable_before = dict(self.load_errors)
        for process_id in self.registry.processes():
            revision = self.registry.revision(process_id)
            if self._seen.get(process_id) == revision:
                continue
            try:
                self._models[process_id] = self.registry.load(process_id)
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
                continue
            self._seen[process_id] = revision
            self.load_errors.pop(process_id, None)
            changed.append(process_id)
        if changed or self.load_errors != unavailable_before:
            # A process that never loaded is still known: its states go to an operator.
            unavailable = {p: why for p, why in self.load_errors.items() if p not in self._models}
            self.engine = DecisionEngine(dict(self._models), top_k=self.top_k, unavailable=unavailable)
        if changed:
            log.info("models in service updated for %s", ", ".join(changed))
        return changed

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
