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
under ``history/``, whoever published it (the learning loop, a deploy, a rollback, a hand
control): a rollback needs to know which models were in service before, including those the
learning loop promoted.

Every write of ``current.json`` holds ``.current.lock`` (an ``flock``) from reading the revision
to replacing the file, so two writers (the learning loop, a deploy, a person pausing autonomy)
never lose each other's change. A writer that computed its pointer from an earlier read passes the
revision it read (``expected_revision``) and gets :class:`PointerChanged` if another one published
since. Hand controls (pauses and stages set by hand, :mod:`selective_autonomy.controls`) are only
changed through :meth:`ModelRegistry.update`; :meth:`ModelRegistry.publish` carries the ones in
force over, so no other publisher (the learning loop, a deploy, a rollback) can lift a pause.
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

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

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
LOCK_FILE = ".current.lock"
WHOLE_PROCESS = "*"
"""The scope of a pause that covers every business cluster of the process."""

STAGE_ORDER: dict[Stage, int] = {Stage.logging: 0, Stage.copilot: 1, Stage.selective: 2}
"""How much runs unattended in each stage: a move up this order is a promotion."""


class Pause(BaseModel):
    """Autonomy paused by hand: nothing of its scope runs unattended until a person resumes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str
    by: str
    at: AwareDatetime

    def detail(self, scope: str) -> str:
        """The deferral detail of a step this pause held back."""
        where = "for the whole process" if scope == WHOLE_PROCESS else f"for cluster {scope}"
        return f"autonomy paused {where} by {self.by} at {self.at:%Y-%m-%d %H:%M:%S %Z}: {self.reason}"


class HandStage(BaseModel):
    """A stage set by hand. The learning loop never moves the cluster while it is there; a person
    sets the stage again or releases the cluster (``selauto stage release``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stage: Stage
    reason: str
    by: str
    at: AwareDatetime


class PendingPromotion(BaseModel):
    """A promotion ``copilot -> selective`` the learning loop proposed (``learning.promotion =
    confirmed``) and a supervisor has not confirmed yet. It rests on one certificate: once that is
    replaced or voided (new models, a monitor alarm, a recertification) the proposal is void, and
    the next learning run proposes again if the new certificate still earns it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    certificate: Certificate = Field(description="The certificate the promotion rests on, as the loop proposed it.")
    certified_coverage: float = Field(ge=0.0, le=1.0, description="Share of calibration steps its thresholds run.")
    reason: str = Field(description="The learning loop's reason, as a promotion it made itself would carry.")
    proposed_at: AwareDatetime
    watch_from: AwareDatetime = Field(
        description="The store's receive time the precision monitor counts from once confirmed: the newest evidence "
        "the proposal saw, as an automatic promotion would set selective_since"
    )


PolicyLoader = Callable[[Path, ProcessSchema], Policy]
CriticLoader = Callable[[Path, ProcessSchema], Critic]


class NoPolicyInService(ArtefactError):
    """The process is registered but its service pointer names no policy (none deployed yet, or
    taken out of service when its schema was replaced)."""


class PointerChanged(SelautoError):
    """Another writer replaced the service pointer after this change was computed from it (a
    publish with ``expected_revision``)."""


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
    threshold_lift: dict[str, float] = Field(
        default_factory=dict,
        description="cluster -> how far its thresholds sit above the certified ones, from the judged steps since "
        "(learning/threshold_lift.py)",
    )
    paused: dict[str, Pause] = Field(
        default_factory=dict,
        description=f"business cluster, or {WHOLE_PROCESS!r} for the whole process -> its pause (set by hand)",
    )
    manual: dict[str, HandStage] = Field(
        default_factory=dict, description="business cluster -> the stage a person set; the learning loop holds it"
    )
    pending_promotions: dict[str, PendingPromotion] = Field(
        default_factory=dict,
        description="business cluster -> a promotion to selective the learning loop proposed, waiting for a "
        "supervisor (learning.promotion = confirmed)",
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

    def pause_for(self, cluster: str) -> tuple[str, Pause] | None:
        """The pause that covers ``cluster`` and its scope (the cluster, or the whole process)."""
        for scope in (cluster, WHOLE_PROCESS):
            if scope in self.paused:
                return scope, self.paused[scope]
        return None

    def pending_promotion(self, cluster: str) -> PendingPromotion | None:
        """The promotion of ``cluster`` waiting for confirmation, while it can still be confirmed: the
        cluster is in copilot and the certificate it rests on is the one in force. A publisher that
        voided the certificate (a deploy, a rollback) need not know about proposals."""
        pending = self.pending_promotions.get(cluster)
        if pending is None or self.stage(cluster) is not Stage.copilot:
            return None
        return pending if self.certificates.get(cluster) == pending.certificate else None

    def hand_hold(self, cluster: str, proposed: Stage) -> str | None:
        """Why a person's hand control keeps ``cluster`` at its stage rather than ``proposed``, or
        None: a stage set by hand is never moved, up or down; a paused cluster (or one of a paused
        process) is never promoted, ``logging -> copilot`` included. The one rule for every
        automatic move: the learning loop's, a first policy's, and a deploy's or rollback's."""
        current = self.stage(cluster)
        if proposed is current:
            return None
        hand = self.manual.get(cluster)
        if hand is not None:
            return f"held: stage set by hand by {hand.by} at {hand.at:%Y-%m-%d %H:%M} ({hand.reason})"
        pause = self.pause_for(cluster)
        if pause is not None and STAGE_ORDER[proposed] > STAGE_ORDER[current]:
            scope, held = pause
            what = "the process" if scope == WHOLE_PROCESS else "the cluster"
            return f"held: {what} is paused by {held.by} ({held.reason})"
        return None

    def with_hand_controls_of(self, current: ServicePointer) -> ServicePointer:
        """This pointer with the pauses and hand-set stages of ``current`` (the one in service)."""
        same = current.paused == self.paused and current.manual == self.manual
        if same and all(self.stage(c) is hand.stage for c, hand in self.manual.items()):
            return self
        stages = dict(self.stages) | {c: hand.stage for c, hand in current.manual.items()}
        return self.model_copy(update={"paused": current.paused, "manual": current.manual, "stages": stages})


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

        The pauses and hand-set stages in force are kept whatever ``pointer`` says: a training
        command, a deploy or the learning loop that read the pointer before a person paused
        autonomy must not lift the pause by publishing.

        :param expected_revision: publish only if the pointer in service still has this revision,
            else raise :class:`PointerChanged` (default None: whatever it is). A change computed from
            the pointer in service must not silently undo one published meanwhile: a learning run
            that started before a hand deploy would otherwise put the old models back.
        """
        with self._locked(process_id) as directory:
            current = self.pointer(process_id)
            if expected_revision is not None and current.revision != expected_revision:
                raise PointerChanged(
                    f"the service pointer of {process_id} is at revision {current.revision}, this change was "
                    f"computed from revision {expected_revision}: run it again"
                )
            return self._write(directory, pointer.with_hand_controls_of(current), current.revision)

    def update(
        self, process_id: str, change: Callable[[ServicePointer], ServicePointer]
    ) -> tuple[ServicePointer, ServicePointer]:
        """Read, change and publish the pointer under the lock, exactly as ``change`` returns it (the
        way hand controls are written). Returns (before, after); nothing is written, and no worker
        reloads, when ``change`` returns the pointer unchanged."""
        with self._locked(process_id) as directory:
            before = self.pointer(process_id)
            after = change(before)
            if after.model_dump(exclude={"revision"}) == before.model_dump(exclude={"revision"}):
                return before, before
            return before, self._write(directory, after, before.revision)

    @contextmanager
    def _locked(self, process_id: str) -> Iterator[Path]:
        """Writers on this host take turns, so that reading the revision and replacing the file are
        one step."""
        directory = self.process_dir(process_id)
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / LOCK_FILE, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
            yield directory

    @staticmethod
    def _write(directory: Path, pointer: ServicePointer, revision: int) -> ServicePointer:
        published = pointer.model_copy(update={"revision": revision + 1})
        text = published.model_dump_json(indent=2)
        # History first: current.json never names a revision the history lacks (a crash between
        # the two leaves an entry that the next write, with the same revision, overwrites).
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
