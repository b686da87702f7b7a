"""executor.adapter decides which adapter the executor builds."""

from __future__ import annotations

import asyncio

import pytest

from selective_autonomy.config import ExecutorSettings, HttpAdapterSettings, HttpRoute
from selective_autonomy.edges.executor.adapter_choice import adapter_for
from selective_autonomy.edges.executor.http_adapter import HttpAdapter
from selective_autonomy.errors import ConfigError

ROUTED = ExecutorSettings(http=HttpAdapterSettings(base_url="http://bpm", routes={"*": HttpRoute(url="/actions")}))


def test_http_names_the_http_adapter_built_from_the_executor_section() -> None:
    adapter = adapter_for(ROUTED)
    assert isinstance(adapter, HttpAdapter) and adapter.settings is ROUTED.http
    asyncio.run(adapter.aclose())


def test_an_unusable_or_unknown_adapter_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="routes is empty"):
        adapter_for(ExecutorSettings())
    # Validation allows only known names; a section built around it must still not fall back to HTTP.
    with pytest.raises(ConfigError, match="'soap' is not one of"):
        adapter_for(ROUTED.model_copy(update={"adapter": "soap"}))
