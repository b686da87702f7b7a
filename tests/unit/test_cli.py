"""Every `selauto` command answers --help, and the offline commands work as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from selective_autonomy.cli import app

runner = CliRunner()


def command_paths(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for name, command in group.commands.items():
        paths.append((*prefix, name))
        if hasattr(command, "commands"):  # a group (typer ships its own click)
            paths += command_paths(command, (*prefix, name))
    return paths


ALL_COMMANDS = command_paths(typer.main.get_command(app))


def test_there_are_commands() -> None:
    assert {("broker",), ("worker",), ("demo",), ("import", "xes"), ("schema", "export")} <= set(ALL_COMMANDS)


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=" ".join)
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_config_show_masks_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SELAUTO_KAFKA__SASL_PASSWORD", "hunter2")
    result = runner.invoke(app, ["config", "show"])
    assert result.exit_code == 0
    assert "hunter2" not in result.output
    assert json.loads(result.output)["kafka"]["sasl_password"] == "**********"


def test_schema_export_writes_contracts(tmp_path: Path) -> None:
    result = runner.invoke(app, ["schema", "export", "--out", str(tmp_path)])
    assert result.exit_code == 0
    assert json.loads((tmp_path / "UIStateChanged.avsc").read_text())["name"].endswith("UIStateChanged")
    assert "properties" in json.loads((tmp_path / "process-schema.json").read_text())


def test_status_shows_stages_thresholds_and_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from selective_autonomy.inference.registry import ModelRegistry, ServicePointer
    from selective_autonomy.inference.thresholds import Thresholds
    from selective_autonomy.schemas.event_parts import Stage
    from selective_autonomy.store import FeedbackStore, default_url
    from tests.factories import BILLING as SCHEMA

    registry = ModelRegistry(tmp_path / "models")
    registry.save_schema(SCHEMA)
    registry.publish(
        "billing",
        ServicePointer(
            policy="policy/v1",
            thresholds=Thresholds(values={"billing/retail/critical": 0.85}, version="t1"),
            stages={"retail": Stage.selective},
            default_stage=Stage.copilot,
        ),
    )
    with FeedbackStore.open(default_url(tmp_path)) as store:
        store.record_stage_transition("billing", "retail", Stage.copilot, reason="policy in service")
        store.record_stage_transition("billing", "retail", Stage.selective, reason="certified 40%")
    monkeypatch.setenv("SELAUTO_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("SELAUTO_DATA_DIR", str(tmp_path))
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    assert "billing (revision 1): policy policy/v1" in result.output
    assert "retail: selective; thresholds {'critical': 0.85}" in result.output
    assert "vip: copilot; thresholds none certified" in result.output
    assert "copilot -> selective: certified 40%" in result.output


def test_demo_from_zero_refuses_a_policy_to_train() -> None:
    # The first policy is the learning loop's; refused before any broker starts.
    result = runner.invoke(app, ["demo", "--from-zero", "--policy", "ngram"])
    assert result.exit_code == 2
    assert "learning loop" in result.output
