"""A tiny process, its schema file, traces, and real artefacts trained on them in a second or two."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from selective_autonomy.inference.artefact import ArtefactMeta
from selective_autonomy.inference.ngram import NGramPolicy
from selective_autonomy.schemas.event_parts import Action, ActionTier, UIState
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.schemas.process import (
    ActionSpec,
    BusinessCluster,
    ProcessSchema,
    UIField,
    ValueType,
)
from selective_autonomy.traces.format import Case, TraceStep

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SCHEMA = ProcessSchema(
    process_id="billing",
    business_clusters=[BusinessCluster(id="retail"), BusinessCluster(id="vip")],
    fields=[UIField(name="plan", type=ValueType.enum, enum=["basic", "pro"])],
    controls=[ActionSpec(name="lookup_order", tier=ActionTier.auto), ActionSpec(name="send_invoice")],
)
FLOW = [Action(action_type="lookup_order"), Action(action_type="send_invoice"), Action(action_type="close_chat")]


def write_schema(path: Path, schema: ProcessSchema = SCHEMA) -> Path:
    schema.save(path)
    return path


def cases(n: int = 12, flow: list[Action] | None = None) -> list[Case]:
    steps = flow or FLOW
    return [
        Case(
            case_id=f"c{c}",
            process_id=SCHEMA.process_id,
            business_cluster="retail",
            started_at=T0 + timedelta(hours=c),
            steps=[
                TraceStep(
                    state=UIState(fields={"plan": "pro"}, recent_actions=steps[:i]),
                    action=action,
                    operator_id="op1",
                    timestamp=T0 + timedelta(hours=c, minutes=i + 1),
                )
                for i, action in enumerate(steps)
            ],
        )
        for c in range(n)
    ]


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
