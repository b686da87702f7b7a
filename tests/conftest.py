"""Shared test configuration: Hypothesis profile for CI, and SIGTERM as an interrupt."""

import signal
from types import FrameType

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure() -> None:
    """A SIGTERM stops the session as Ctrl-C does, so that fixtures and ``finally`` blocks stop the
    brokers and worker processes they started (``make test`` stops its background chaos session
    with SIGTERM: a background job ignores SIGINT)."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)
