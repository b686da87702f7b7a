"""Fixtures of the policy tests: a small slice of the real Helpdesk log, skipped where it is absent."""

from __future__ import annotations

import pytest

from selective_autonomy.inference.datasets import ProcessCases, load_event_log
from selective_autonomy.traces import datasets

HELPDESK_SLICE = 300


@pytest.fixture(scope="session")
def helpdesk_slice() -> ProcessCases:
    """The first 300 cases of the Helpdesk log with the schema derived from them."""
    try:
        path = datasets.helpdesk_log_path()
    except FileNotFoundError as error:
        pytest.skip(f"Helpdesk log not available here: {error}")
    return load_event_log(path, "helpdesk", limit_cases=HELPDESK_SLICE)
