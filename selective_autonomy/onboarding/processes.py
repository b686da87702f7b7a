"""Register a process: validate its schema, store it in the models registry, start it in logging."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from selective_autonomy.inference.registry import ModelRegistry
from selective_autonomy.onboarding.errors import InvalidSchema, SchemaConflict, UnknownProcess
from selective_autonomy.onboarding.protocol import (
    ChangeOutcome,
    ChangeRequest,
    ClusterStage,
    ProcessSummary,
    version_of,
)
from selective_autonomy.onboarding.rules import PointerChange, reset_for_schema
from selective_autonomy.schemas.event_parts import Stage
from selective_autonomy.schemas.process import ProcessSchema
from selective_autonomy.store.models import ServiceChangeKind
from selective_autonomy.store.repository import FeedbackStore

_SHOWN_PROBLEMS = 10


def read_schema(path: Path) -> ProcessSchema:
    """The process schema in ``path``; :class:`InvalidSchema` says what is wrong and where."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidSchema(f"cannot read {path}: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidSchema(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidSchema(f"{path} is not a process schema: expected a mapping with process_id, fields, controls")
    try:
        return ProcessSchema.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"  {'.'.join(str(part) for part in error['loc']) or '(top level)'}: {error['msg']}"
            for error in exc.errors()
        ]
        more = len(problems) - _SHOWN_PROBLEMS
        shown = problems[:_SHOWN_PROBLEMS] + ([f"  ... and {more} more"] if more > 0 else [])
        raise InvalidSchema(
            f"{path} is not a valid process schema ({len(problems)} problem(s); the format: selauto schema "
            "export):\n" + "\n".join(shown)
        ) from exc


def registered_schema(registry: ModelRegistry, process_id: str) -> ProcessSchema:
    if process_id not in registry.processes():
        known = ", ".join(registry.processes()) or "none"
        raise UnknownProcess(
            f"no process {process_id!r} in {registry.models_dir} (registered: {known}); "
            "add it first: selauto process add SCHEMA.yaml"
        )
    return registry.schema(process_id)


def add_process(
    registry: ModelRegistry,
    store: FeedbackStore,
    schema: ProcessSchema,
    request: ChangeRequest,
    *,
    replace: bool = False,
) -> ChangeOutcome:
    """Register ``schema``; a process starts in logging with no model in service.

    The same schema again changes nothing. Another schema for a registered process is refused
    with what replacing it would void, unless ``replace``: then its models, certificates and
    thresholds are void and every cluster is back in logging.
    """
    process_id = schema.process_id
    old = registry.schema(process_id) if process_id in registry.processes() else None
    pointer = registry.pointer(process_id)
    if old is not None and old.schema_hash() == schema.schema_hash():
        return ChangeOutcome(
            process_id=process_id,
            kind=ServiceChangeKind.process_added,
            changed=False,
            revision=pointer.revision,
            policy=version_of(pointer.policy),
            critic=version_of(pointer.critic),
        )
    kind = ServiceChangeKind.process_added if old is None else ServiceChangeKind.schema_replaced
    why = request.says("process added" if old is None else f"schema replaced (version {schema.version})")
    change = reset_for_schema(pointer, old, schema, why)
    if old is not None and not replace:
        raise SchemaConflict(_conflict(old, schema, change))
    if old is None:
        # The schema first: a worker lists a process once its schema is there, and a pointer
        # without one would name a process nobody can decide for.
        registry.save_schema(schema)
        published = registry.publish(process_id, change.pointer, expected_revision=pointer.revision)
    else:
        # The pointer first: a worker reloads on it and drops the old models (no policy in
        # service) before the old schema is gone; a crash in between leaves the old schema with
        # no models, and `process add --replace` again finishes the job.
        published = registry.publish(process_id, change.pointer, expected_revision=pointer.revision)
        registry.save_schema(schema)
    store.record_service_change(
        process_id,
        kind,
        revision=published.revision,
        changed_by=request.by,
        reason=request.reason,
        detail="; ".join(change.voided + change.held),
    )
    for cluster in (c.id for c in schema.business_clusters):
        # The store's history starts each cluster in logging (a new cluster, or a new process,
        # has no earlier stage there to change from).
        if store.latest_stage(process_id, cluster) is not Stage.logging:
            store.record_stage_transition(process_id, cluster, Stage.logging, reason=why)
    return ChangeOutcome(
        process_id=process_id,
        kind=kind,
        changed=True,
        revision=published.revision,
        voided=change.voided,
        stage_changes=change.stage_changes,
        held=change.held,
    )


def _conflict(old: ProcessSchema, new: ProcessSchema, change: PointerChange) -> str:
    voids = "; ".join(change.voided) or "no model, certificate or threshold (none in service)"
    moves = ", ".join(f"{c.business_cluster} {c.from_stage.value} -> logging" for c in change.stage_changes)
    return (
        f"process {new.process_id} is registered with another schema (version {old.version}, hash "
        f"{old.schema_hash()}; this file: version {new.version}, hash {new.schema_hash()}). Replacing it voids: "
        f"{voids}" + (f"; stages: {moves}" if moves else "") + ". Add --replace to replace it."
    )


def list_processes(registry: ModelRegistry) -> list[ProcessSummary]:
    summaries = []
    for process_id in registry.processes():
        schema, pointer = registry.schema(process_id), registry.pointer(process_id)
        clusters = [
            ClusterStage(cluster=c.id, stage=pointer.stage(c.id), certified=c.id in pointer.certificates)
            for c in schema.business_clusters
        ]
        summaries.append(
            ProcessSummary(
                process_id=process_id,
                schema_version=schema.version,
                schema_hash=schema.schema_hash(),
                revision=pointer.revision,
                policy=version_of(pointer.policy),
                critic=version_of(pointer.critic),
                thresholds_version=pointer.thresholds.version,
                clusters=clusters,
            )
        )
    return summaries
