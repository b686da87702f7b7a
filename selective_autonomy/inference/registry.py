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
from pathlib import Path

from selective_autonomy.errors import SelautoError
from selective_autonomy.inference.artefact import ArtefactError
from selective_autonomy.inference.loaders import ModelLoaders, builtin_loaders
from selective_autonomy.inference.pointer import (
    STAGE_ORDER,
    WHOLE_PROCESS,
    HandStage,
    Pause,
    PendingPromotion,
    ServicePointer,
)
from selective_autonomy.inference.protocol import Critic, Policy, PolicyConfidenceCritic
from selective_autonomy.schemas.identifiers import process_dir_name
from selective_autonomy.schemas.process import ProcessSchema
from selective_autonomy.schemas.schema_files import SCHEMA_FILE, processes_with_schema, schema_path

# The pointer's names are imported from here by most readers of the registry.
__all__ = [
    "CURRENT_FILE",
    "HISTORY_DIR",
    "LOCK_FILE",
    "SCHEMA_FILE",
    "STAGE_ORDER",
    "WHOLE_PROCESS",
    "HandStage",
    "ModelRegistry",
    "NoPolicyInService",
    "Pause",
    "PendingPromotion",
    "PointerChanged",
    "ProcessModels",
    "ServicePointer",
]

CURRENT_FILE = "current.json"
HISTORY_DIR = "history"
LOCK_FILE = ".current.lock"


class NoPolicyInService(ArtefactError):
    """The process is registered but its service pointer names no policy (none deployed yet, or
    taken out of service when its schema was replaced)."""


class PointerChanged(SelautoError):
    """Another writer replaced the service pointer after this change was computed from it (a
    publish with ``expected_revision``)."""


@dataclass(frozen=True)
class ProcessModels:
    """Everything the decide agent needs for one process, loaded together."""

    schema: ProcessSchema
    policy: Policy
    critic: Critic
    pointer: ServicePointer


class ModelRegistry:
    """The models directory of one deployment.

    :param loaders: how artefacts load, per kind (default :func:`builtin_loaders`: no LLM kinds).
        The composition root that serves LLM models passes loaders that know their servers.
    """

    def __init__(self, models_dir: Path, loaders: ModelLoaders | None = None) -> None:
        self.models_dir = models_dir
        self.loaders = loaders if loaders is not None else builtin_loaders()

    def process_dir(self, process_id: str) -> Path:
        """The process's directory; :class:`InvalidIdentifier` for an id that is not a process id."""
        return self.models_dir / process_dir_name(process_id)

    def processes(self) -> list[str]:
        return processes_with_schema(self.models_dir)

    def schema(self, process_id: str) -> ProcessSchema:
        return ProcessSchema.load(schema_path(self.models_dir, process_id))

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
        policy = self.loaders.load_policy(directory / pointer.policy, schema)
        critic: Critic = PolicyConfidenceCritic()
        if pointer.critic is not None:
            critic = self.loaders.load_critic(directory / pointer.critic, schema)
        return ProcessModels(schema=schema, policy=policy, critic=critic, pointer=pointer)


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix)
    # mkstemp makes the file private; workers and the console may read the registry as another user.
    os.fchmod(fd, 0o644)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(tmp, path)
