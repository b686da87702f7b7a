"""The from-zero run's set-up, without a broker: its learning settings, and the empty models directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from selective_autonomy.config import LearningSettings, Settings
from selective_autonomy.demo.from_zero import FromZeroConfig, learning_settings, run_from_zero
from selective_autonomy.errors import SelautoError
from selective_autonomy.inference.registry import ModelRegistry
from selective_autonomy.traces.datasets import helpdesk_log_path
from tests.factories import BILLING as SCHEMA


def test_the_run_keeps_the_configured_learning_settings_but_its_pace() -> None:
    base = LearningSettings(window_feedback=1234, min_critic_examples=500, first_policy_check_s=10.0)
    config = FromZeroConfig(log=Path("log.xes"), first_policy_cases=120, relearn_every=200, target_precision=0.85)
    learning = learning_settings(base, config)
    assert (learning.window_feedback, learning.min_critic_examples) == (1234, 500)
    assert (learning.first_policy_cases, learning.retrain_every_feedback, learning.target_precision) == (120, 200, 0.85)
    assert learning.first_policy_check_s == 1.0


def test_a_models_directory_that_holds_a_process_is_refused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, models_dir=tmp_path / "models")
    ModelRegistry(settings.models_dir).save_schema(SCHEMA)
    with pytest.raises(SelautoError, match="already holds billing"):
        run_from_zero(settings, FromZeroConfig(log=helpdesk_log_path(), limit_cases=20), progress=lambda _: None)
