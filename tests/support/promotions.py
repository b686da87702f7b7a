"""A promotion the learning loop proposed (``learning.promotion = confirmed``), made by hand for the
tests of the controls that confirm it: a certificate in force, its thresholds, and the proposal."""

from __future__ import annotations

from datetime import timedelta

from selective_autonomy.inference.certificate import Certificate, CertifiedKey
from selective_autonomy.inference.registry import PendingPromotion, ServicePointer
from selective_autonomy.inference.thresholds import Thresholds
from selective_autonomy.schemas.event_parts import Stage
from tests.factories import T0 as ISSUED


def certificate(process_id: str, cluster: str, threshold: float = 0.8) -> Certificate:
    key = f"{process_id}/{cluster}/auto/lookup_order"
    return Certificate(
        business_cluster=cluster,
        issued_at=ISSUED,
        received_to=ISSUED,
        critic_version="policy-confidence",
        policy_version="v1",
        target_precision=0.9,
        confidence=0.9,
        coverage=0.4,
        keys={key: CertifiedKey(threshold=threshold, samples=300, coverage=0.4, max_step=4)},
        judged_actions={"lookup_order": 300},
    )


def with_proposal(pointer: ServicePointer, process_id: str, cluster: str) -> ServicePointer:
    """``pointer`` with ``cluster`` in copilot, certified, and its promotion proposed."""
    cert = certificate(process_id, cluster)
    pending = PendingPromotion(
        certificate=cert,
        certified_coverage=cert.coverage,
        reason="certified thresholds cover 40.0% of steps at precision >= 90%",
        proposed_at=ISSUED + timedelta(hours=1),
        watch_from=ISSUED + timedelta(minutes=5),
    )
    thresholds = {**pointer.thresholds.values, **{k: key.threshold for k, key in cert.keys.items()}}
    return pointer.model_copy(
        update={
            "stages": {**pointer.stages, cluster: Stage.copilot},
            "certificates": {**pointer.certificates, cluster: cert},
            "thresholds": Thresholds(values=thresholds, version="thresholds-test"),
            "pending_promotions": {**pointer.pending_promotions, cluster: pending},
        }
    )
