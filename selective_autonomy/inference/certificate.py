"""What a cluster's thresholds were certified on, so that nothing new runs on an old certificate.

A certificate covers the situations it was earned on. The gate asks :meth:`Certificate.uncovered`
before it executes: an action type operators judged too rarely in the certifying evidence, or a
step further into a case than any step the key was certified on, is deferred as
``novel_situation`` until feedback covers it. The monitor stops a wave of wrong executions that
these cheap guards miss.
"""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class CertifiedKey(BaseModel):
    """One certified threshold key and the calibration evidence behind it."""

    model_config = ConfigDict(frozen=True)

    threshold: float
    samples: int = Field(ge=0, description="Calibration steps of this key.")
    coverage: float = Field(ge=0.0, le=1.0, description="Share of them at or above the threshold.")
    empirical_precision: float | None = None
    lower_bound: float | None = Field(default=None, description="Clopper-Pearson lower bound at the confidence.")
    max_step: int = Field(ge=0, description="Largest state version among the key's calibration steps.")


class Certificate(BaseModel):
    """The certified thresholds of one business cluster and the evidence they came from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    business_cluster: str
    issued_at: AwareDatetime = Field(description="Time of the newest evidence used (feedback time).")
    evidence_from: AwareDatetime | None = None
    received_to: AwareDatetime | None = Field(
        default=None, description="The store's receive time of the newest evidence used: what counts as new after it."
    )
    critic_version: str
    policy_version: str
    target_precision: float
    confidence: float
    coverage: float = Field(default=0.0, ge=0.0, le=1.0, description="Share of the cluster's calibration steps run.")
    keys: dict[str, CertifiedKey] = Field(default_factory=dict, description="threshold key -> evidence")
    judged_actions: dict[str, int] = Field(
        default_factory=dict, description="action type -> judgements in the certifying evidence"
    )
    min_judgements: int = Field(default=0, ge=0, description="Judgements an action type needs to run unattended.")

    def uncovered(self, key: str, action_type: str, step: int) -> str | None:
        """Why this step is outside what the certificate was earned on, or None when it is inside."""
        judged = self.judged_actions.get(action_type, 0)
        if judged < self.min_judgements:
            return f"{action_type} was judged {judged} times in the certifying evidence (needs {self.min_judgements})"
        certified = self.keys.get(key)
        if certified is not None and step > certified.max_step:
            return (
                f"step {step} is further into the case than any certified step of {action_type} ({certified.max_step})"
            )
        return None
