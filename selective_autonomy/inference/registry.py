"""The models directory: per process, its schema and the model versions in service.

Layout::

    <models_dir>/<process_id>/schema.yaml
    <models_dir>/<process_id>/policy/<version>/        artefact directories
    <models_dir>/<process_id>/critic/<version>/
    <models_dir>/<process_id>/current.json             what is in service (ServicePointer)
    <models_dir>/<process_id>/history/<revision>.json  every pointer published, for rollbacks

``<process_id>`` is the directory name :func:`~selective_autonomy.schemas.identifiers.process_dir_name`
gives: an id that is not a valid process id (a path separator, ``..``, NUL) raises
:class:`~selective_autonomy.schemas.identifiers.InvalidIdentifier` before any path is built, and
only directories whose names are valid ids are listed.

Training jobs write a new artefact directory, then publish it by atomically replacing
``current.json``; workers poll that file and hot-reload, so a new version goes into service
without a restart and a half-written model is never loaded. Each published pointer is also kept
under ``history/``, whoever published it (the learning loop, a deploy, a rollback): a rollback
needs to know which models were in service before, including those the learning loop promoted.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from selective_autonomy.errors import SelautoError
from selective_autonomy.inference.artefact import ArtefactError, read_meta
from selective_autonomy.inference.certificate import Certificate
from selective_autonomy.inference.ngram import NGramPolicy
from selective_autonomy.inference.protocol import Critic, Policy, PolicyConfidenceCritic
from selective_autonomy.inference.thresholds import Thresholds
from selective_autonomy.schemas.events import Stage
from selective_autonomy.schemas.identifiers import is_process_id, process_dir_name
from selective_autonomy.schemas.process import ProcessSchema

CURRENT_FILE = "current.json"
SCHEMA_FILE = "schema.yaml"
HISTORY_DIR = "history"
LOCK_FILE = ".publish.lock"

PolicyLoader = Callable[[Path, ProcessSchema], Policy]
CriticLoader = Callable[[Path, ProcessSchema], Critic]


class NoPolicyInService(ArtefactError):
    """The process is registered but its service pointer names no policy (none deployed yet, or
    taken out of service when its schema was replaced)."""


class PointerChanged(SelautoError):
    """Another publisher replaced the service pointer after this change was computed from it."""


class ServicePointer(BaseModel):
    """What is in service for one process: relative artefact paths, thresholds, certificates and
    stages. The one source of truth for stages: the store's history and ``stage.changes`` are
    written from it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: str | None = Field(default=None, description="Policy artefact dir, relative to the process dir.")
    critic: str | None = Field(default=None, description="Critic artefact dir; none = policy-confidence critic.")
    thresholds: Thresholds = Field(default_factory=Thresholds)
    stages: dict[str, Stage] = Field(default_factory=dict, description="business cluster -> stage")
    default_stage: Stage = Stage.logging
    certificates: dict[str, Certificate] = Field(
        default_factory=dict, description="business cluster -> what its thresholds were certified on"
    )
    exploration_share: float = Field(
        default=0.0, ge=0.0, lt=1.0, description="Share of sessions kept in copilot while their cluster is selective."
    )
    selective_since: dict[str, datetime] = Field(
        default_factory=dict,
        description="cluster -> the store's receive time when it went selective: the monitor counts what came after",
    )
    evidence_since: dict[str, datetime] = Field(
        default_factory=dict,
        description="cluster -> certify only on evidence received from this time on (set by an alarm)",
    )
    revision: int = 0

    @model_validator(mode="before")
    @classmethod
    def _drop_retired_fields(cls, data: Any) -> Any:
        # Pointers written by 0.1 carried the acceptance rate at promotion, a drift baseline that
        # selective-stage deferrals are biased against; it is no longer read.
        if isinstance(data, dict) and "reference_acceptance" in data:
            data = {k: v for k, v in data.items() if k != "reference_acceptance"}
        return data

    def stage(self, cluster: str) -> Stage:
        return self.stages.get(cluster, self.default_stage)


@dataclass(frozen=True)
class ProcessModels:
    """Everything the decide agent needs for one process, loaded together."""

    schema: ProcessSchema
    policy: Policy
    critic: Critic
    pointer: ServicePointer


def _load_ngram(directory: Path, schema: ProcessSchema) -> Policy:
    return NGramPolicy.load(directory, schema)


def _load_embedded_policy(directory: Path, schema: ProcessSchema) -> Policy:
    # torch is imported only when a torch model is loaded: readers of the registry (console,
    # `selauto status`) never pay for it.
    from selective_autonomy.inference.embedded_policy import EmbeddedPolicy

    return EmbeddedPolicy.load(directory, schema)


def _load_embedded_critic(directory: Path, schema: ProcessSchema) -> Critic:
    from selective_autonomy.inference.critic import EmbeddedCritic

    return EmbeddedCritic.load(directory, schema)


POLICY_LOADERS: dict[str, PolicyLoader] = {"policy-ngram": _load_ngram, "policy-embedded": _load_embedded_policy}
CRITIC_LOADERS: dict[str, CriticLoader] = {"critic-embedded": _load_embedded_critic}


def register_policy_loader(kind: str, loader: PolicyLoader) -> None:
    POLICY_LOADERS[kind] = loader


def register_critic_loader(kind: str, loader: CriticLoader) -> None:
    CRITIC_LOADERS[kind] = loader


class ModelRegistry:
    def __init__(self, models_dir: Path) -> None:
        self.models_dir = models_dir

    def process_dir(self, process_id: str) -> Path:
        """The process's directory; :class:`InvalidIdentifier` for an id that is not a process id."""
        return self.models_dir / process_dir_name(process_id)

    def processes(self) -> list[str]:
        if not self.models_dir.is_dir():
            return []
        return sorted(
            p.name for p in self.models_dir.iterdir() if is_process_id(p.name) and (p / SCHEMA_FILE).is_file()
        )

    def schema(self, process_id: str) -> ProcessSchema:
        return ProcessSchema.load(self.process_dir(process_id) / SCHEMA_FILE)

    def save_schema(self, schema: ProcessSchema) -> None:
        directory = self.process_dir(schema.process_id)
        # Atomically: a worker reloading meanwhile reads the old schema or the new one, never half.
        _write_atomically(directory / SCHEMA_FILE, schema.to_yaml())

    def pointer(self, process_id: str) -> ServicePointer:
        path = self.process_dir(process_id) / CURRENT_FILE
        if not path.is_file():
            return ServicePointer()
        return ServicePointer.model_validate_json(path.read_text())

    def publish(
        self, process_id: str, pointer: ServicePointer, *, expected_revision: int | None = None
    ) -> ServicePointer:
        """Atomically replace what is in service; returns the pointer with its new revision.

        :param expected_revision: publish only if the pointer in service still has this revision,
            else raise :class:`PointerChanged` (default None: whatever it is). A change computed from
            the pointer in service must not silently undo one published meanwhile: a learning run
            that started before a hand deploy would otherwise put the old models back.
        """
        directory = self.process_dir(process_id)
        directory.mkdir(parents=True, exist_ok=True)
        # Publishers on this host take turns, so that checking the revision and replacing the file
        # are one step.
        with _locked(directory / LOCK_FILE):
            current = self.pointer(process_id).revision
            if expected_revision is not None and current != expected_revision:
                raise PointerChanged(
                    f"the service pointer of {process_id} is at revision {current}, this change was computed "
                    f"from revision {expected_revision}: run it again"
                )
            published = pointer.model_copy(update={"revision": current + 1})
            text = published.model_dump_json(indent=2)
            # History first: current.json never names a revision the history lacks (a crash between
            # the two leaves an entry that the next publish, with the same revision, overwrites).
            _write_atomically(directory / HISTORY_DIR / f"{published.revision}.json", text)
            _write_atomically(directory / CURRENT_FILE, text)
        return published

    def history(self, process_id: str) -> list[ServicePointer]:
        """Every published pointer kept under ``history/``, oldest first (pointers published before
        the history existed are not there)."""
        directory = self.process_dir(process_id) / HISTORY_DIR
        if not directory.is_dir():
            return []
        revisions = sorted(int(p.stem) for p in directory.glob("*.json") if p.stem.isdigit())
        return [ServicePointer.model_validate_json((directory / f"{r}.json").read_text()) for r in revisions]

    def revision(self, process_id: str) -> tuple[int, int]:
        """Cheap change detector: (mtime_ns, size) of current.json."""
        path = self.process_dir(process_id) / CURRENT_FILE
        try:
            stat = path.stat()
        except FileNotFoundError:
            return (0, 0)
        return (stat.st_mtime_ns, stat.st_size)

    def load(self, process_id: str) -> ProcessModels:
        schema = self.schema(process_id)
        pointer = self.pointer(process_id)
        directory = self.process_dir(process_id)
        if pointer.policy is None:
            raise NoPolicyInService(f"process {process_id} has no policy in service ({directory / CURRENT_FILE})")
        policy = _load_policy(directory / pointer.policy, schema)
        critic: Critic = PolicyConfidenceCritic()
        if pointer.critic is not None:
            critic = _load_critic(directory / pointer.critic, schema)
        return ProcessModels(schema=schema, policy=policy, critic=critic, pointer=pointer)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix)
    # mkstemp makes the file private; workers and the console may read the registry as another user.
    os.fchmod(fd, 0o644)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(tmp, path)


def _load_policy(directory: Path, schema: ProcessSchema) -> Policy:
    kind = read_meta(directory, schema).kind
    if kind not in POLICY_LOADERS:
        raise ArtefactError(f"no policy loader for artefact kind {kind!r} ({directory})")
    return POLICY_LOADERS[kind](directory, schema)


def _load_critic(directory: Path, schema: ProcessSchema) -> Critic:
    kind = read_meta(directory, schema).kind
    if kind not in CRITIC_LOADERS:
        raise ArtefactError(f"no critic loader for artefact kind {kind!r} ({directory})")
    return CRITIC_LOADERS[kind](directory, schema)
