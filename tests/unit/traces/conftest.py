"""Fixtures for the trace tests: small slices of the real datasets, skipped where a dataset is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from selective_autonomy.traces import datasets
from selective_autonomy.traces.eventlog import EventTable, read_event_log
from selective_autonomy.traces.format import Case
from selective_autonomy.traces.mapping import load_mapping

HELPDESK_SLICE = 200


def _require(path_getter: object) -> Path:
    assert callable(path_getter)
    try:
        path = path_getter()
    except FileNotFoundError as error:
        pytest.skip(f"dataset not available here: {error}")
    assert isinstance(path, Path)
    return path


@pytest.fixture(scope="session")
def helpdesk_path() -> Path:
    return _require(datasets.helpdesk_log_path)


@pytest.fixture(scope="session")
def bpi_path() -> Path:
    return _require(datasets.bpi2012w_log_path)


@pytest.fixture(scope="session")
def sgd_path() -> Path:
    return _require(datasets.sgd_dir)


@pytest.fixture(scope="session")
def abcd_path() -> Path:
    return _require(datasets.abcd_data_dir)


@pytest.fixture(scope="session")
def helpdesk_table(helpdesk_path: Path) -> EventTable:
    """The first 200 cases of the Helpdesk log."""
    return read_event_log(helpdesk_path, load_mapping("helpdesk"), limit_cases=HELPDESK_SLICE)


@pytest.fixture(scope="session")
def helpdesk_cases(helpdesk_table: EventTable) -> list[Case]:
    from selective_autonomy.traces.eventlog import iter_cases

    return list(iter_cases(helpdesk_table))
