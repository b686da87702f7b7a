"""Certified thresholds on the critic's score, per (process, business cluster, action tier)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from selective_autonomy.schemas.events import ActionTier


class ThresholdKey(BaseModel):
    model_config = ConfigDict(frozen=True)

    process_id: str
    business_cluster: str
    tier: ActionTier

    def text(self) -> str:
        return f"{self.process_id}/{self.business_cluster}/{self.tier.value}"


class Thresholds(BaseModel):
    """Certified critic-score thresholds per (process, cluster, tier); a missing key means
    nothing could be certified there, so that cluster and tier stay with the operator."""

    model_config = ConfigDict(frozen=True)

    values: dict[str, float] = Field(default_factory=dict, description="key 'process/cluster/tier' -> threshold")
    version: str = "none"

    def get(self, process_id: str, business_cluster: str, tier: ActionTier) -> float | None:
        return self.values.get(ThresholdKey(process_id=process_id, business_cluster=business_cluster, tier=tier).text())
