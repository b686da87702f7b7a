"""The adapter that ``executor.adapter`` names, built from the executor's section."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from selective_autonomy.config import ExecutorSettings
from selective_autonomy.edges.executor.adapters import ActionAdapter
from selective_autonomy.edges.executor.http_adapter import HttpAdapter
from selective_autonomy.errors import ConfigError

ADAPTERS: Mapping[str, Callable[[ExecutorSettings], ActionAdapter]] = {
    "http": lambda executor: HttpAdapter(executor.http),
}
"""Adapter name (the values ``executor.adapter`` accepts) -> how to build it."""


def adapter_for(executor: ExecutorSettings) -> ActionAdapter:
    """The adapter ``executor.adapter`` names; raises ConfigError when it is unknown or not usable."""
    build = ADAPTERS.get(executor.adapter)
    if build is None:
        raise ConfigError(f"executor.adapter {executor.adapter!r} is not one of {sorted(ADAPTERS)}")
    return build(executor)
