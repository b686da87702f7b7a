"""Dataset locations: the shared copy first, the project's own copy of the Helpdesk log otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from selective_autonomy.traces import datasets


def test_repo_root_is_the_checkout() -> None:
    assert (datasets.REPO_ROOT / "pyproject.toml").is_file()
    assert (datasets.PROJECT_DATA / "Helpdesk.xes.gz").is_file()


def test_prefers_the_shared_copy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    shared = tmp_path / "shared" / "data"
    (shared / "eventlogs").mkdir(parents=True)
    (shared / "eventlogs" / "Helpdesk.xes.gz").write_bytes(b"")
    monkeypatch.setattr(datasets, "SHARED_DATA", shared)
    assert datasets.helpdesk_log_path() == shared / "eventlogs" / "Helpdesk.xes.gz"


def test_falls_back_to_the_project_copy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(datasets, "SHARED_DATA", tmp_path / "absent")
    assert datasets.helpdesk_log_path() == datasets.PROJECT_DATA / "Helpdesk.xes.gz"
    with pytest.raises(FileNotFoundError, match="absent"):
        datasets.sgd_dir()


def test_project_copy_is_the_shared_file() -> None:
    shared = datasets.SHARED_DATA / "eventlogs" / "Helpdesk.xes.gz"
    if not shared.is_file():
        pytest.skip("no shared data here")
    assert (datasets.PROJECT_DATA / "Helpdesk.xes.gz").read_bytes() == shared.read_bytes()
