"""Put policy and critic artefacts in service, roll back to earlier ones, and list them.

A deploy validates each artefact before anything changes (it loads, it is a model of the right
kind for this process, and it was built for the registered schema: the schema hash in its
``artefact.json``), copies it into the registry under its version, then publishes a new service
pointer (workers hot-reload it). What the change does to certificates and stages is
:mod:`selective_autonomy.onboarding.rules`.

A rollback goes back to the policy and critic in service before the current ones, read from the
registry's pointer history (``history/<revision>.json``, every pointer published, by anyone), or
to the pair in service when ``--to VERSION`` was last in service. Like ``helm rollback``, a second
rollback without ``--to`` goes back to what the first one replaced.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from selective_autonomy.config import StageRules
from selective_autonomy.inference.artefact import ArtefactError, ArtefactMeta, read_meta
from selective_autonomy.inference.loaders import builtin_loaders
from selective_autonomy.inference.registry import ModelRegistry, ServicePointer
from selective_autonomy.onboarding.errors import ArtefactRefused, NothingToRollBack, OnboardingError
from selective_autonomy.onboarding.processes import registered_schema
from selective_autonomy.onboarding.protocol import (
    ChangeOutcome,
    ChangeRequest,
    ModelListing,
    ModelVersionRow,
    PointerRevision,
    version_of,
)
from selective_autonomy.onboarding.rules import PointerChange, change_models
from selective_autonomy.schemas.identifiers import is_process_id
from selective_autonomy.schemas.process import ProcessSchema
from selective_autonomy.store.models import ModelKind, ModelVersion, ServiceChange, ServiceChangeKind
from selective_autonomy.store.repository import FeedbackStore

LEARNING_LOOP = "learning loop"
_LLM_KINDS = {"policy-llm", "critic-llm"}


def check_artefact(directory: Path, kind: ModelKind, schema: ProcessSchema) -> ArtefactMeta:
    """The artefact's metadata, once it is known to load as a ``kind`` for ``schema``."""
    try:
        meta = read_meta(directory, kind_prefix=kind.value)
    except (ArtefactError, ValidationError, OSError) as exc:
        raise ArtefactRefused(f"{directory}: {exc}") from exc
    if meta.process_id != schema.process_id:
        raise ArtefactRefused(
            f"{directory} holds a {meta.kind} of process {meta.process_id!r}, not {schema.process_id!r}"
        )
    if meta.schema_hash != schema.schema_hash():
        raise ArtefactRefused(
            f"{kind.value} {meta.version} was built for process schema {meta.schema_hash}, but {schema.process_id} "
            f"is registered with schema {schema.schema_hash()} (version {schema.version}): train it on traces of "
            f"the registered schema (selauto train policy --schema <models_dir>/{schema.process_id}/schema.yaml), "
            "or register its schema first (selauto process add --replace, which voids what is in service)"
        )
    if not is_process_id(meta.version):
        # The version names the artefact's directory in the registry.
        raise ArtefactRefused(f"{directory}: version {meta.version!r} cannot name a directory")
    try:
        _load(kind, meta.kind, directory, schema)
    except ArtefactRefused:
        raise
    except Exception as exc:  # whatever a loader raises, the artefact is not fit for service
        raise ArtefactRefused(f"{directory} does not load as a {meta.kind}: {type(exc).__name__}: {exc}") from exc
    return meta


def _load(kind: ModelKind, artefact_kind: str, directory: Path, schema: ProcessSchema) -> object:
    builtin = builtin_loaders()
    loaders = builtin.policies if kind is ModelKind.policy else builtin.critics
    loader = loaders.get(artefact_kind)
    if loader is not None:
        return loader(directory, schema)
    if artefact_kind in _LLM_KINDS:
        # Served by vLLM: loading reads the artefact and its tokenizer and contacts no server, so
        # the client settings do not matter to this check.
        from selective_autonomy.inference.llm.critic import LLMCritic
        from selective_autonomy.inference.llm.policy import LLMPolicy
        from selective_autonomy.inference.llm.settings import LLMClientSettings

        model = LLMPolicy if kind is ModelKind.policy else LLMCritic
        return model.load(directory, schema, LLMClientSettings())
    raise ArtefactRefused(f"{directory}: no {kind.value} loader for artefact kind {artefact_kind!r}")


def install(registry: ModelRegistry, process_id: str, source: Path, meta: ArtefactMeta, kind: ModelKind) -> str:
    """Copy a checked artefact into the registry as ``<kind>/<version>``; returns that path.

    The copy is made beside the target and renamed into place, so the registry never holds half an
    artefact under a version's name. The same artefact again is kept as it is.
    """
    relative = f"{kind.value}/{meta.version}"
    target = registry.process_dir(process_id) / relative
    if target.exists():
        try:
            installed = read_meta(target)
        except (ArtefactError, ValidationError) as exc:
            raise ArtefactRefused(f"{target} is in the way and is not an artefact: {exc}") from exc
        if installed != meta:
            raise ArtefactRefused(
                f"the registry already holds another {kind.value} named {meta.version} (created "
                f"{installed.created_at:%Y-%m-%d %H:%M:%S}, this one {meta.created_at:%Y-%m-%d %H:%M:%S})"
            )
        return relative
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{meta.version}-"))
    try:
        shutil.copytree(source, staging, dirs_exist_ok=True)
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return relative


def deploy(
    registry: ModelRegistry,
    store: FeedbackStore,
    process_id: str,
    request: ChangeRequest,
    *,
    policy: Path | None = None,
    critic: Path | None = None,
    rules: StageRules | None = None,
) -> ChangeOutcome:
    """Put the given policy and/or critic in service; the other one stays as it is."""
    if policy is None and critic is None:
        raise OnboardingError("nothing to deploy: give a policy, a critic or both")
    schema = registered_schema(registry, process_id)
    pointer = registry.pointer(process_id)
    checked = [
        (kind, directory, check_artefact(directory, kind, schema))
        for kind, directory in ((ModelKind.policy, policy), (ModelKind.critic, critic))
        if directory is not None
    ]
    if policy is None and pointer.policy is None:
        raise ArtefactRefused(
            f"{process_id} has no policy in service, and a critic judges a policy's suggestions: "
            "deploy a policy first, or both at once"
        )
    paths = {ModelKind.policy: pointer.policy, ModelKind.critic: pointer.critic}
    installed: list[tuple[ModelKind, str, ArtefactMeta]] = []
    for kind, directory, meta in checked:
        relative = install(registry, process_id, directory, meta, kind)
        paths[kind] = relative
        installed.append((kind, relative, meta))
    deployed = ", ".join(f"{kind.value} {meta.version}" for kind, _, meta in installed)
    change = change_models(
        pointer, schema, paths[ModelKind.policy], paths[ModelKind.critic], request.says(f"{deployed} deployed"), rules
    )
    return _publish(registry, store, process_id, pointer, change, ServiceChangeKind.deployed, request, installed)


def rollback(
    registry: ModelRegistry,
    store: FeedbackStore,
    process_id: str,
    request: ChangeRequest,
    *,
    to: str | None = None,
    rules: StageRules | None = None,
) -> ChangeOutcome:
    """Back to the policy and critic in service before the current ones, or to those in service
    when version ``to`` (a policy's or a critic's) was last in service."""
    schema = registered_schema(registry, process_id)
    pointer = registry.pointer(process_id)
    policy, critic, revision = rollback_target(registry, process_id, pointer, to)
    directory = registry.process_dir(process_id)
    targets: list[tuple[ModelKind, str, ArtefactMeta]] = []
    for kind, path in ((ModelKind.policy, policy), (ModelKind.critic, critic)):
        if path is None:
            continue
        try:
            targets.append((kind, path, check_artefact(directory / path, kind, schema)))
        except ArtefactRefused as exc:
            raise ArtefactRefused(f"cannot roll back to {kind.value} {version_of(path)}: {exc}") from exc
    source = f"revision {revision}" if revision is not None else "the registry"
    what = f"rolled back to policy {version_of(policy)}, critic {version_of(critic) or 'policy-confidence'} ({source})"
    change = change_models(pointer, schema, policy, critic, request.says(what), rules)
    return _publish(registry, store, process_id, pointer, change, ServiceChangeKind.rolled_back, request, targets)


def rollback_target(
    registry: ModelRegistry, process_id: str, pointer: ServicePointer, to: str | None
) -> tuple[str | None, str | None, int | None]:
    """(policy path, critic path, the history revision they come from) to roll back to."""
    current = (pointer.policy, pointer.critic)
    history = [p for p in registry.history(process_id) if p.revision <= pointer.revision]
    if to is None:
        for entry in reversed(history):
            pair = (entry.policy, entry.critic)
            if pair == current:
                continue
            if entry.policy is None:
                break  # before the first policy: going back there would take the process out of service
            return entry.policy, entry.critic, entry.revision
        raise NothingToRollBack(
            f"the pointer history of {process_id} holds no policy in service before {version_of(pointer.policy)}: "
            "nothing to roll back to"
        )
    if not is_process_id(to):
        # It names a directory below the process's: never one elsewhere.
        raise NothingToRollBack(f"{to!r} is not a model version")
    for entry in reversed(history):
        if to in (version_of(entry.policy), version_of(entry.critic)):
            if (entry.policy, entry.critic) == current:
                raise NothingToRollBack(f"{to} is in service already ({process_id} revision {pointer.revision})")
            return entry.policy, entry.critic, entry.revision
    # Never in service since the history was kept (or an artefact that was only installed): the
    # version alone replaces its kind, the other model stays.
    directory = registry.process_dir(process_id)
    if (directory / ModelKind.policy.value / to).is_dir():
        return f"{ModelKind.policy.value}/{to}", pointer.critic, None
    if (directory / ModelKind.critic.value / to).is_dir():
        if pointer.policy is None:
            raise NothingToRollBack(f"{process_id} has no policy in service for critic {to} to judge")
        return pointer.policy, f"{ModelKind.critic.value}/{to}", None
    raise NothingToRollBack(
        f"no policy or critic {to!r} in the registry of {process_id} (see: selauto models list --process {process_id})"
    )


def _publish(
    registry: ModelRegistry,
    store: FeedbackStore,
    process_id: str,
    pointer: ServicePointer,
    change: PointerChange,
    kind: ServiceChangeKind,
    request: ChangeRequest,
    models: Sequence[tuple[ModelKind, str, ArtefactMeta]],
) -> ChangeOutcome:
    if change.pointer == pointer:
        return ChangeOutcome(
            process_id=process_id,
            kind=kind,
            changed=False,
            revision=pointer.revision,
            policy=version_of(pointer.policy),
            critic=version_of(pointer.critic),
        )
    published = registry.publish(process_id, change.pointer, expected_revision=pointer.revision)
    policy, critic = version_of(published.policy), version_of(published.critic)
    # The pointer is what is in service; the store records it after the fact (a crash here loses
    # the record, never the change).
    for model_kind, path, meta in models:
        store.record_model_version(model_kind, process_id, meta.version, path, dict(meta.metrics), promoted=True)
    store.record_service_change(
        process_id,
        kind,
        revision=published.revision,
        changed_by=request.by,
        policy=policy,
        critic=critic,
        reason=request.reason,
        detail="; ".join(change.voided + change.held),
    )
    for stage_change in change.stage_changes:
        store.record_stage_transition(
            process_id, stage_change.business_cluster, stage_change.to_stage, reason=stage_change.reason
        )
    return ChangeOutcome(
        process_id=process_id,
        kind=kind,
        changed=True,
        revision=published.revision,
        policy=policy,
        critic=critic,
        voided=change.voided,
        stage_changes=change.stage_changes,
        held=change.held,
    )


def list_models(registry: ModelRegistry, store: FeedbackStore, process_id: str) -> ModelListing:
    """Every artefact in the registry of a process, oldest first per kind, with when and by whom it
    last went into service; and each pointer revision that changed the models in service."""
    registered_schema(registry, process_id)
    pointer = registry.pointer(process_id)
    history = _model_history(registry, process_id, store.service_changes(process_id))
    directory = registry.process_dir(process_id)
    rows: list[ModelVersionRow] = []
    for kind in (ModelKind.policy, ModelKind.critic):
        in_service = pointer.policy if kind is ModelKind.policy else pointer.critic
        recorded = {v.version: v for v in store.model_versions(kind, process_id)}
        put_in = _put_in_service(history, kind)
        found: list[ModelVersionRow] = []
        parent = directory / kind.value
        for entry in sorted(parent.iterdir()) if parent.is_dir() else []:
            if entry.name.startswith(".") or not entry.is_dir():
                continue  # a copy being made (install), or not an artefact
            try:
                meta = read_meta(entry)
            except (ArtefactError, ValidationError):
                continue
            row = ModelVersionRow(
                kind=kind,
                version=meta.version,
                artefact_kind=meta.kind,
                created_at=meta.created_at,
                train_cases=meta.train_cases,
                in_service=in_service == f"{kind.value}/{entry.name}",
            )
            found.append(row.model_copy(update=_how_it_went_in(put_in.get(meta.version), recorded.get(meta.version))))
        rows += sorted(found, key=lambda r: r.created_at)
    return ModelListing(process_id=process_id, versions=rows, history=history)


def _put_in_service(history: Sequence[PointerRevision], kind: ModelKind) -> dict[str, PointerRevision]:
    """version -> the last pointer revision that put it in service (its kind changed to it)."""
    last: dict[str, PointerRevision] = {}
    previous: str | None = None
    for entry in history:
        version = entry.policy if kind is ModelKind.policy else entry.critic
        if version is not None and version != previous:
            last[version] = entry
        previous = version
    return last


def _how_it_went_in(put: PointerRevision | None, recorded: ModelVersion | None) -> dict[str, object]:
    if put is not None and put.change is not None:
        return {"deployed_at": put.change.at, "deployed_by": put.change.changed_by, "how": put.change.kind.value}
    if recorded is not None and recorded.promoted_at is not None:
        # Written and promoted by the learning loop (apply_plan records it; no hand change did).
        return {"deployed_at": recorded.promoted_at, "deployed_by": LEARNING_LOOP, "how": LEARNING_LOOP}
    if put is not None:
        return {"how": "in service before, not recorded"}
    return {}


def _model_history(registry: ModelRegistry, process_id: str, changes: Sequence[ServiceChange]) -> list[PointerRevision]:
    by_revision = {c.revision: c for c in changes}
    revisions: list[PointerRevision] = []
    previous: tuple[str | None, str | None] | None = None
    for entry in registry.history(process_id):
        pair = (entry.policy, entry.critic)
        if pair == previous:
            continue
        previous = pair
        revisions.append(
            PointerRevision(
                revision=entry.revision,
                policy=version_of(entry.policy),
                critic=version_of(entry.critic),
                change=by_revision.get(entry.revision),
            )
        )
    return revisions
