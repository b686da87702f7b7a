"""Trained model versions (one promoted per kind and process) and the changes people made to what
is in service (deploys, rollbacks), with who and why."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from pydantic import JsonValue, TypeAdapter
from sqlalchemy import Connection, and_, select, update
from sqlalchemy.engine import RowMapping

from selective_autonomy.schemas.event_parts import utc_now
from selective_autonomy.store.base import Repository
from selective_autonomy.store.engine import read_transaction, write_transaction
from selective_autonomy.store.errors import UnknownModelVersion
from selective_autonomy.store.models import ModelKind, ModelVersion, ServiceChange, ServiceChangeKind
from selective_autonomy.store.tables import model_versions, service_changes
from selective_autonomy.store.upsert import insert_new, insert_returning_id
from selective_autonomy.store.values import from_row

_METRICS = TypeAdapter(dict[str, JsonValue])


class ModelVersionRepository(Repository):
    """Model versions and hand changes to what is in service."""

    def record_model_version(
        self,
        kind: ModelKind,
        process_id: str,
        version: str,
        path: str | Path,
        metrics: Mapping[str, JsonValue] | None = None,
        *,
        promoted: bool = False,
        created_at: datetime | None = None,
    ) -> ModelVersion:
        """Register a trained model; a version already registered is kept as it was (idempotent).

        :param promoted: also make it the promoted version of its kind and process (default False).
        """
        row = {
            "kind": kind.value,
            "process_id": process_id,
            "version": version,
            "path": str(path),
            "metrics": _METRICS.dump_json(dict(metrics or {})).decode(),
            "promoted": False,
            "promoted_at": None,
            "created_at": created_at or utc_now(),
        }
        with write_transaction(self._engine) as connection:
            insert_new(connection, model_versions, row, conflict=("kind", "process_id", "version"))
            if promoted:
                _promote(connection, kind, process_id, version)
            return _recorded_version(connection, kind, process_id, version)

    def promote(self, kind: ModelKind, process_id: str, version: str) -> ModelVersion:
        """Make ``version`` the one promoted version of its kind and process; the previous one is demoted."""
        with write_transaction(self._engine) as connection:
            _promote(connection, kind, process_id, version)
            return _recorded_version(connection, kind, process_id, version)

    def promoted_version(self, kind: ModelKind, process_id: str) -> ModelVersion | None:
        query = select(model_versions).where(
            model_versions.c.kind == kind.value,
            model_versions.c.process_id == process_id,
            model_versions.c.promoted.is_(True),
        )
        with read_transaction(self._engine) as connection:
            row = connection.execute(query).mappings().first()
        return None if row is None else _model_version_from(row)

    def model_versions(self, kind: ModelKind, process_id: str) -> list[ModelVersion]:
        """Every registered version of one kind and process, oldest first."""
        query = (
            select(model_versions)
            .where(model_versions.c.kind == kind.value, model_versions.c.process_id == process_id)
            .order_by(model_versions.c.created_at, model_versions.c.id)
        )
        with read_transaction(self._engine) as connection:
            rows = connection.execute(query).mappings().all()
        return [_model_version_from(row) for row in rows]

    # changes made by hand ---------------------------------------------------------------------

    def record_service_change(
        self,
        process_id: str,
        kind: ServiceChangeKind,
        *,
        revision: int,
        changed_by: str,
        policy: str | None = None,
        critic: str | None = None,
        reason: str = "",
        detail: str = "",
        at: datetime | None = None,
    ) -> ServiceChange:
        """Append who changed what is in service by hand, and why.

        :param revision: the service pointer revision the change published.
        :param policy: policy version in service after the change (default None: none).
        :param critic: critic version in service after it (default None: the policy-confidence critic).
        """
        row = {
            "process_id": process_id,
            "revision": revision,
            "kind": kind.value,
            "policy": policy,
            "critic": critic,
            "changed_by": changed_by,
            "reason": reason,
            "detail": detail,
            "at": at or utc_now(),
        }
        with write_transaction(self._engine) as connection:
            new_id = insert_returning_id(connection, service_changes, row)
        return ServiceChange.model_validate({**row, "id": new_id})

    def service_changes(self, process_id: str) -> list[ServiceChange]:
        """Every change made by hand to one process, oldest first."""
        query = (
            select(service_changes)
            .where(service_changes.c.process_id == process_id)
            .order_by(service_changes.c.at, service_changes.c.id)
        )
        with read_transaction(self._engine) as connection:
            rows = connection.execute(query).mappings().all()
        return [ServiceChange.model_validate(dict(row)) for row in rows]


def _recorded_version(connection: Connection, kind: ModelKind, process_id: str, version: str) -> ModelVersion:
    stored = _model_version(connection, kind, process_id, version)
    if stored is None:
        raise UnknownModelVersion(f"{kind.value} {version} of process {process_id} was never recorded")
    return stored


def _promote(connection: Connection, kind: ModelKind, process_id: str, version: str) -> None:
    same = and_(model_versions.c.kind == kind.value, model_versions.c.process_id == process_id)
    target = model_versions.c.version == version
    # Demote first: the partial unique index allows one promoted row per (kind, process) at any time.
    connection.execute(
        update(model_versions).where(same, model_versions.c.promoted.is_(True), ~target).values(promoted=False)
    )
    promoted = connection.execute(
        update(model_versions)
        .where(same, target, model_versions.c.promoted.is_(False))
        .values(promoted=True, promoted_at=utc_now())
    )
    if promoted.rowcount == 0:  # already promoted, or never recorded: the latter raises
        _recorded_version(connection, kind, process_id, version)


def _model_version(connection: Connection, kind: ModelKind, process_id: str, version: str) -> ModelVersion | None:
    query = select(model_versions).where(
        model_versions.c.kind == kind.value,
        model_versions.c.process_id == process_id,
        model_versions.c.version == version,
    )
    row = connection.execute(query).mappings().first()
    return None if row is None else _model_version_from(row)


def _model_version_from(row: RowMapping) -> ModelVersion:
    return from_row(ModelVersion, row, metrics=_METRICS.validate_json(row["metrics"]))
