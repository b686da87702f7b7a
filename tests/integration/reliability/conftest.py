"""Fixtures of the reliability tests: settings with installed models, and worker subprocesses
that are always killed at teardown."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from selective_autonomy.config import Settings

from .helpers import WorkerProcess, install_models


@pytest.fixture
def reliability_settings(make_settings: Callable[..., Settings], tmp_path: Path) -> Settings:
    settings = make_settings(partitions=2).model_copy(update={"models_dir": tmp_path / "models"})
    install_models(settings.models_dir)
    return settings


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start ``selauto worker`` subprocesses; any still running at teardown is SIGKILLed."""
    started: list[WorkerProcess] = []

    def start(settings: Settings, name: str = "worker") -> WorkerProcess:
        worker = WorkerProcess(settings, tmp_path / f"{name}.log").start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()
