"""Fixtures for the trace tests: small slices of the real datasets, skipped where a dataset is absent."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from selective_autonomy.traces import datasets
from selective_autonomy.traces.eventlog import EventTable, read_event_log
from selective_autonomy.traces.format import Case
from selective_autonomy.traces.mapping import load_mapping

HELPDESK_SLICE = 200


def _require(path_getter: Callable[[Path], Path], root: Path) -> Path:
    try:
        return path_getter(root)
    except FileNotFoundError as error:
        pytest.skip(f"dataset not available here: {error}")


@pytest.fixture(scope="session")
def helpdesk_path(shared_data: Path) -> Path:
    return _require(datasets.helpdesk_log_path, shared_data)


@pytest.fixture(scope="session")
def bpi_path(shared_data: Path) -> Path:
    return _require(datasets.bpi2012w_log_path, shared_data)


@pytest.fixture(scope="session")
def sgd_path(shared_data: Path) -> Path:
    return _require(datasets.sgd_dir, shared_data)


@pytest.fixture(scope="session")
def abcd_path(shared_data: Path) -> Path:
    return _require(datasets.abcd_data_dir, shared_data)


@pytest.fixture(scope="session")
def helpdesk_table(helpdesk_path: Path) -> EventTable:
    """The first 200 cases of the Helpdesk log."""
    return read_event_log(helpdesk_path, load_mapping("helpdesk"), limit_cases=HELPDESK_SLICE)


@pytest.fixture(scope="session")
def helpdesk_cases(helpdesk_table: EventTable) -> list[Case]:
    from selective_autonomy.traces.eventlog import iter_cases

    return list(iter_cases(helpdesk_table))
