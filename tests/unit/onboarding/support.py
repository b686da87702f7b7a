"""Real artefacts trained in a second or two on the cases of :data:`tests.factories.BILLING_MINIMAL`, and a
certificate in force for its ``retail`` cluster."""

from __future__ import annotations

from pathlib import Path

from selective_autonomy.inference.artefact import ArtefactMeta
from selective_autonomy.inference.certificate import Certificate
from selective_autonomy.inference.ngram import NGramPolicy
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.schemas.process import ProcessSchema
from tests.factories import BILLING_MINIMAL as SCHEMA
from tests.factories import CASES_T0 as T0
from tests.factories import cases

CERTIFICATE = Certificate(
    business_cluster="retail",
    issued_at=T0,
    critic_version="c1",
    policy_version="p1",
    target_precision=0.9,
    confidence=0.95,
    coverage=0.4,
)


def ngram_artefact(out: Path, schema: ProcessSchema = SCHEMA, n: int = 12, version: str | None = None) -> Path:
    """An n-gram policy trained on ``n`` cases, saved as ``out/<version>``.

    :param version: the artefact's version (default: the one training gives; two trainings within
        one second on the same cases get the same one).
    """
    trained = cases(n)
    policy = NGramPolicy(schema).fit(trained)
    meta = policy.train_meta(trained)
    if version is not None:
        meta = meta.model_copy(update={"version": version})
    policy.save(out / meta.version, meta)
    return out / meta.version


def critic_artefact(out: Path, schema: ProcessSchema = SCHEMA) -> Path:
    """An untrained embedded critic: a real artefact that loads (its scores do not matter here)."""
    from selective_autonomy.inference.critic import CriticConfig, CriticNet, EmbeddedCritic
    from selective_autonomy.inference.feature_encoder import FeatureEncoder

    events = [
        UIStateChanged(
            session_id=case.case_id,
            process_id=schema.process_id,
            business_cluster=case.business_cluster,
            state_version=i,
            ui_state=step.state,
        )
        for case in cases(4)
        for i, step in enumerate(case.steps)
    ]
    encoder = FeatureEncoder.fit(schema, events)
    critic = EmbeddedCritic(schema, encoder, CriticNet(encoder, CriticConfig()))
    meta: ArtefactMeta = critic.new_meta(len(events), {})
    critic.save(out / meta.version, meta)
    return out / meta.version
