"""Certified thresholds on the critic's score, per (process, business cluster, action tier, action type).

The learning loop certifies one threshold per action type: a threshold shared by a tier's action
types promises precision for their mix only, and a weak action type hides behind easy ones until
the mix or that type shifts (on Helpdesk, "Resolve ticket" after "Take in charge" ran at 75%
under a 90% certificate, then fell to 34%; docs/guarantee.md). A key without an action type
(``process/cluster/tier``) is still honoured, as a threshold set by hand for every action of the
tier; an action-type key takes precedence over it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from selective_autonomy.schemas.event_parts import ActionTier


class ThresholdKey(BaseModel):
    model_config = ConfigDict(frozen=True)

    process_id: str
    business_cluster: str
    tier: ActionTier
    action_type: str | None = None

    def text(self) -> str:
        return key_text(self.process_id, self.business_cluster, self.tier, self.action_type)


def key_text(process_id: str, business_cluster: str, tier: ActionTier, action_type: str | None = None) -> str:
    """A threshold key as stored: ``process/cluster/tier`` or ``process/cluster/tier/action_type``.

    Plain strings, no model: the gate looks a key up for every decided step.
    """
    base = f"{process_id}/{business_cluster}/{tier.value}"
    return base if action_type is None else f"{base}/{action_type}"


class Thresholds(BaseModel):
    """Thresholds per key; a missing key means nothing could be certified there, so those steps
    stay with the operator."""

    model_config = ConfigDict(frozen=True)

    values: dict[str, float] = Field(
        default_factory=dict,
        description="key 'process/cluster/tier/action_type' (or 'process/cluster/tier') -> threshold",
    )
    version: str = "none"

    def get(
        self, process_id: str, business_cluster: str, tier: ActionTier, action_type: str | None = None
    ) -> float | None:
        if action_type is not None:
            specific = self.values.get(key_text(process_id, business_cluster, tier, action_type))
            if specific is not None:
                return specific
        return self.values.get(key_text(process_id, business_cluster, tier))

    def for_cluster(self, process_id: str, business_cluster: str) -> dict[str, float]:
        prefix = f"{process_id}/{business_cluster}/"
        return {key: value for key, value in self.values.items() if key.startswith(prefix)}
