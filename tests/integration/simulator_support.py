"""A slice of the Helpdesk event log (its derived schema, training cases and held-out cases) and the
n-gram models trained on it, for the simulator's and the feedback loop's runs on the real broker."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from selective_autonomy.inference.ngram import NGramPolicy
from selective_autonomy.inference.registry import ModelRegistry, ServicePointer
from selective_autonomy.inference.thresholds import Thresholds
from selective_autonomy.schemas.event_parts import ActionTier, Stage
from selective_autonomy.schemas.process import ProcessSchema
from selective_autonomy.traces.format import Case

CLUSTER = "helpdesk_ticket"


@dataclass(frozen=True)
class Slice:
    schema: ProcessSchema
    train: list[Case]
    held_out: list[Case]


def install(models_dir: Path, data: Slice, stage: Stage) -> None:
    registry = ModelRegistry(models_dir)
    registry.save_schema(data.schema)
    policy = NGramPolicy(data.schema).fit(data.train)
    meta = policy.train_meta(data.train)
    policy.save(registry.process_dir(data.schema.process_id) / "policy" / meta.version, meta)
    # The policy is at least this sure of most steps and less of some: the gate both executes and defers.
    thresholds = Thresholds(values={f"{data.schema.process_id}/{CLUSTER}/{tier.value}": 0.8 for tier in ActionTier})
    pointer = ServicePointer(policy=f"policy/{meta.version}", thresholds=thresholds, stages={CLUSTER: stage})
    registry.publish(data.schema.process_id, pointer)
