"""Shared test configuration: Hypothesis profile for CI, SIGTERM as an interrupt, and where the
public datasets are."""

import os
import signal
from pathlib import Path
from types import FrameType

import pytest
from hypothesis import HealthCheck, settings

SHARED_DATA = Path(os.environ.get("SELAUTO_DATASETS_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")
"""The datasets folder of the tests: ``SELAUTO_DATASETS_DIR``, else the workspace's ``shared/data`` next to
the checkout (the package itself only knows the project's ``data/``)."""

settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The datasets folder (eventlogs/, sgd/, abcd/); tests of a dataset it lacks skip."""
    return SHARED_DATA


def pytest_configure() -> None:
    """A SIGTERM stops the session as Ctrl-C does, so that fixtures and ``finally`` blocks stop the
    brokers and worker processes they started (``make test`` stops its background chaos session
    with SIGTERM: a background job ignores SIGINT)."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)
