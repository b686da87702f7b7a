"""Process schemas and stages for the console, read from the models directory and cached.

A schema is reloaded when its file changes (one ``stat`` per lookup); stages are re-read from
each process's ``current.json`` at most every ``ttl_s`` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from pydantic import ValidationError

from selective_autonomy.console.protocol import StageRow
from selective_autonomy.inference.registry import ModelRegistry
from selective_autonomy.schemas.process import ProcessSchema
from selective_autonomy.schemas.schema_files import SchemaFiles

log = logging.getLogger(__name__)


class SchemaCatalog:
    """Schemas by process id.

    :param models_dir: the models directory (``Settings.models_dir``).
    :param extra: schemas given directly, used when the directory has none for a process; default none.
    :param ttl_s: how long stages are cached; default 5 s.
    """

    def __init__(
        self,
        models_dir: Path,
        extra: Mapping[str, ProcessSchema] | None = None,
        ttl_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = ModelRegistry(models_dir)
        self.files = SchemaFiles(models_dir, extra)
        self.ttl_s = ttl_s
        self.clock = clock
        self._lock = threading.Lock()
        self._stages: tuple[float, list[StageRow]] | None = None

    def schema(self, process_id: str) -> ProcessSchema | None:
        return self.files.schema(process_id)

    def processes(self) -> list[str]:
        return self.files.processes()

    def stages(self) -> list[StageRow]:
        """Stage of every cluster of every process in the models directory."""
        now = self.clock()
        with self._lock:
            cached = self._stages
        if cached is not None and now - cached[0] < self.ttl_s:
            return cached[1]
        rows = [row for process_id in self.processes() for row in self._rows(process_id)]
        with self._lock:
            self._stages = (now, rows)
        return rows

    def _rows(self, process_id: str) -> list[StageRow]:
        try:
            pointer = self.registry.pointer(process_id)
        except (OSError, ValueError, ValidationError) as exc:
            log.warning("unreadable service pointer of %s: %s", process_id, exc)
            return []
        schema = self.schema(process_id)
        clusters = [c.id for c in schema.business_clusters] if schema is not None else []
        clusters += sorted(set(pointer.stages) - set(clusters))
        if not clusters:
            clusters = ["default"]
        return [
            StageRow(
                process_id=process_id,
                business_cluster=c,
                stage=pointer.stage(c),
                paused=pointer.pause_for(c) is not None,
            )
            for c in clusters
        ]
