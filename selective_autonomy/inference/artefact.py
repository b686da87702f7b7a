"""Versioned model artefacts: a directory holding the weights plus ``artefact.json``.

The metadata names the process schema hash the model was trained for (a model is refused for
another schema), the training data range, and the offline metrics used to decide promotion.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from selective_autonomy.errors import SelautoError
from selective_autonomy.schemas.process import ProcessSchema
from selective_autonomy.traces.format import Case

META_FILE = "artefact.json"


class ArtefactError(SelautoError):
    """An artefact is missing, unreadable or was trained for another process schema."""


class ArtefactMeta(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = Field(description="e.g. policy-ngram, policy-embedded, policy-llm, critic-embedded")
    version: str
    process_id: str
    schema_hash: str
    created_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))
    train_from: AwareDatetime | None = None
    train_to: AwareDatetime | None = None
    evaluated_to: AwareDatetime | None = Field(
        default=None,
        description="Newest answer (operator's answer time) this version was trained or chosen on: a certificate "
        "for it is earned only on answers given later. None when it learned from recorded cases only.",
    )
    train_cases: int = 0
    train_examples: int = 0
    metrics: dict[str, float] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of_cases(
        cls,
        kind: str,
        schema: ProcessSchema,
        cases: Sequence[Case],
        *,
        examples: int,
        digest: str = "",
        metrics: dict[str, float] | None = None,
        params: dict[str, Any] | None = None,
    ) -> ArtefactMeta:
        """The metadata of a model trained on recorded ``cases``: a new version whose digest names the
        schema, the case and example counts and ``digest`` (what else makes this training differ)."""
        return cls(
            kind=kind,
            version=new_version(kind, f"{schema.schema_hash()}:{len(cases)}:{examples}{digest}"),
            process_id=schema.process_id,
            schema_hash=schema.schema_hash(),
            train_from=min((c.started_at for c in cases), default=None),
            train_to=max((c.started_at for c in cases), default=None),
            train_cases=len(cases),
            train_examples=examples,
            metrics=metrics or {},
            params=params or {},
        )

    @classmethod
    def of_update(
        cls,
        kind: str,
        schema: ProcessSchema,
        base: ArtefactMeta | None,
        *,
        examples: int,
        digest: str,
        params: dict[str, Any],
    ) -> ArtefactMeta:
        """The metadata of a model ``base`` describes, updated with ``examples`` more: a new version named
        by ``digest``, with the base's training span and counts plus those examples."""
        return cls(
            kind=kind,
            version=new_version(kind, digest),
            process_id=schema.process_id,
            schema_hash=schema.schema_hash(),
            train_from=base.train_from if base else None,
            train_to=base.train_to if base else None,
            train_cases=base.train_cases if base else 0,
            train_examples=(base.train_examples if base else 0) + examples,
            params=params,
        )


def new_version(kind: str, content_digest: str) -> str:
    """Sortable, unique version: kind, UTC time, and a digest of what was trained."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return f"{kind}-{stamp}-{hashlib.sha256(content_digest.encode()).hexdigest()[:6]}"


def write_meta(directory: Path, meta: ArtefactMeta) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / META_FILE).write_text(meta.model_dump_json(indent=2))


def read_meta(directory: Path, schema: ProcessSchema | None = None, kind_prefix: str | None = None) -> ArtefactMeta:
    path = directory / META_FILE
    if not path.is_file():
        raise ArtefactError(f"{directory} is not a model artefact (no {META_FILE})")
    meta = ArtefactMeta.model_validate_json(path.read_text())
    if kind_prefix is not None and not meta.kind.startswith(kind_prefix):
        raise ArtefactError(f"{directory} holds a {meta.kind}, not a {kind_prefix}")
    if schema is not None and meta.schema_hash != schema.schema_hash():
        raise ArtefactError(
            f"{directory} was trained for process schema {meta.schema_hash}, this is {schema.schema_hash()}"
        )
    return meta
