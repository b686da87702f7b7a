"""Process schemas as files of the models directory, ``<models_dir>/<process_id>/schema.yaml``.

The layout the model registry (``inference.registry``) writes; the console and the webhook read it
through :class:`SchemaFiles` without importing the model code (neither has a use for torch).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path

import yaml
from pydantic import ValidationError

from selective_autonomy.schemas.identifiers import InvalidIdentifier, is_process_id, process_dir_name
from selective_autonomy.schemas.process import ProcessSchema

log = logging.getLogger(__name__)

SCHEMA_FILE = "schema.yaml"


def schema_path(models_dir: Path, process_id: str) -> Path:
    """Where ``process_id``'s schema lives; :class:`InvalidIdentifier` for an id that is not a process id."""
    return models_dir / process_dir_name(process_id) / SCHEMA_FILE


def processes_with_schema(models_dir: Path) -> list[str]:
    """The processes of ``models_dir`` that have a schema file, sorted."""
    if not models_dir.is_dir():
        return []
    return sorted(p.name for p in models_dir.iterdir() if is_process_id(p.name) and (p / SCHEMA_FILE).is_file())


class SchemaFiles:
    """Schemas by process id from the models directory, reloaded when a file changes (one ``stat`` a lookup).

    :param models_dir: ``Settings.models_dir``.
    :param extra: schemas given directly, used when the directory has none (or an unreadable one) for a process.
    """

    def __init__(self, models_dir: Path, extra: Mapping[str, ProcessSchema] | None = None) -> None:
        self.models_dir = models_dir
        self.extra = dict(extra or {})
        self._lock = threading.Lock()
        # Keyed by the file's (mtime, size): a schema saved again (atomically, a new inode) is read again.
        self._cache: dict[str, tuple[tuple[int, int], ProcessSchema]] = {}

    def schema(self, process_id: str) -> ProcessSchema | None:
        # An id from a URL or a record that is no process id names no schema, and no path is built from it.
        try:
            path = schema_path(self.models_dir, process_id)
        except InvalidIdentifier:
            return None
        try:
            stat = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return self.extra.get(process_id)
        except OSError as exc:
            log.warning("cannot read %s: %s", path, exc)
            return self.extra.get(process_id)
        signature = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            cached = self._cache.get(process_id)
        if cached is not None and cached[0] == signature:
            return cached[1]
        try:
            schema = ProcessSchema.load(path)
        # A file that is no YAML at all (yaml's errors are no ValueError) is as invalid as a wrong schema.
        except (OSError, ValueError, ValidationError, yaml.YAMLError) as exc:
            log.warning("invalid process schema %s: %s", path, exc)
            return self.extra.get(process_id)
        with self._lock:
            self._cache[process_id] = (signature, schema)
        return schema

    def processes(self) -> list[str]:
        """Processes with a schema on disk or given directly, sorted."""
        return sorted(set(processes_with_schema(self.models_dir)) | set(self.extra))
