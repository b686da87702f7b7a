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
