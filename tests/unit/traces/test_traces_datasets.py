"""Dataset locations: a given datasets folder first, the project's own copy of the Helpdesk log otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from selective_autonomy.traces import datasets


def test_the_project_data_is_in_the_checkout() -> None:
    assert (datasets.REPO_ROOT / "pyproject.toml").is_file()
    assert (datasets.PROJECT_DATA / "Helpdesk.xes.gz").is_file()


def test_a_datasets_folder_is_preferred(tmp_path: Path) -> None:
    (tmp_path / "eventlogs").mkdir()
    (tmp_path / "eventlogs" / "Helpdesk.xes.gz").write_bytes(b"")
    (tmp_path / "sgd").mkdir()
    assert datasets.helpdesk_log_path(tmp_path) == tmp_path / "eventlogs" / "Helpdesk.xes.gz"
    assert datasets.sgd_dir(tmp_path) == tmp_path / "sgd"


def test_without_one_only_the_project_copy_is_found(tmp_path: Path) -> None:
    assert datasets.helpdesk_log_path() == datasets.PROJECT_DATA / "Helpdesk.xes.gz"
    assert datasets.helpdesk_log_path(tmp_path / "absent") == datasets.PROJECT_DATA / "Helpdesk.xes.gz"
    with pytest.raises(FileNotFoundError, match="absent"):
        datasets.sgd_dir(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match=str(datasets.PROJECT_DATA)):
        datasets.abcd_data_dir()  # the package never looks outside the project for data


def test_the_package_names_no_workspace_folder() -> None:
    assert "shared" not in Path(datasets.__file__).read_text()


def test_project_copy_is_the_shared_file(shared_data: Path) -> None:
    shared = shared_data / "eventlogs" / "Helpdesk.xes.gz"
    if not shared.is_file():
        pytest.skip("no shared data here")
    assert (datasets.PROJECT_DATA / "Helpdesk.xes.gz").read_bytes() == shared.read_bytes()


def test_the_setting_names_the_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from selective_autonomy.config import load_settings

    assert load_settings().datasets_dir is None
    monkeypatch.setenv("SELAUTO_DATASETS_DIR", str(tmp_path))
    assert load_settings().datasets_dir == tmp_path
