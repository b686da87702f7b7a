"""``train`` and ``eval`` of the policy sub-app on small slices."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from selective_autonomy.inference.datasets import ProcessCases
from selective_autonomy.inference.embedded_policy import EmbeddedPolicy
from selective_autonomy.inference.ngram import NGramPolicy
from selective_autonomy.inference.policy_cli import policy_app
from selective_autonomy.traces.format import write_cases

from .support import synthetic_cases, synthetic_schema

runner = CliRunner()


def test_commands_and_options_have_help() -> None:
    group = typer.main.get_command(policy_app)
    commands = getattr(group, "commands", {})
    assert set(commands) == {"train", "eval"}
    for name, command in commands.items():
        assert command.help, name
        for param in command.params:
            assert getattr(param, "help", None), f"{name} {param.name}"


def test_train_from_cases_and_schema(tmp_path: Path) -> None:
    cases, schema = tmp_path / "cases.jsonl", tmp_path / "schema.yaml"
    write_cases(cases, synthetic_cases(30))
    synthetic_schema().save(schema)
    for kind, cls in (("ngram", NGramPolicy), ("embedded", EmbeddedPolicy)):
        out = tmp_path / kind
        args = ["train", "--cases", str(cases), "--schema", str(schema), "--kind", kind, "--out", str(out)]
        result = runner.invoke(policy_app, [*args, "--max-epochs", "2"])
        assert result.exit_code == 0, result.output
        (artefact,) = out.iterdir()
        assert artefact.name.startswith(f"policy-{kind}-")
        loaded = cls.load(artefact, synthetic_schema())
        assert loaded.version == artefact.name


def test_train_llm_writes_a_servable_artefact(tmp_path: Path) -> None:
    pytest.importorskip("transformers", reason="the llm extra is not installed")
    from selective_autonomy.inference.llm.policy import LLMPolicy
    from selective_autonomy.inference.llm.settings import LLMClientSettings

    cases, schema = tmp_path / "cases.jsonl", tmp_path / "schema.yaml"
    write_cases(cases, synthetic_cases(20))
    synthetic_schema().save(schema)
    out = tmp_path / "llm"
    args = ["train", "--cases", str(cases), "--schema", str(schema), "--llm", "--llm-train-seconds", "3"]
    result = runner.invoke(policy_app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    (artefact,) = out.iterdir()  # the staging folder is gone
    assert artefact.name.startswith("policy-llm-")
    assert (artefact / "config.json").is_file() and (artefact / "tokenizer.json").is_file()
    policy = LLMPolicy.load(artefact, synthetic_schema(), LLMClientSettings())
    assert policy.version == artefact.name
    assert "llm policy" in result.output


def test_train_needs_an_input(tmp_path: Path) -> None:
    result = runner.invoke(policy_app, ["train", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "--log" in result.output


def test_eval_on_a_helpdesk_slice(helpdesk_slice: ProcessCases, tmp_path: Path) -> None:
    args = ["eval", "--log", "helpdesk", "--limit", "150", "--max-epochs", "2", "--out", str(tmp_path)]
    result = runner.invoke(policy_app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "policy_eval_helpdesk.json").read_text())
    assert [p["name"] for p in report["policies"]] == ["ngram", "embedded"]
    assert report["test_cases"] == 30
    assert all(p["n"] == report["test_examples"] for p in report["policies"])
    assert "encode_forward" in report["policies"][1]["latency_ms"]
    assert (tmp_path / "policy_eval_helpdesk.png").is_file()


def test_eval_on_an_event_log_path_needs_a_mapping(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_text("ticket_id,activity,finished_at\nT1,Open,2024-03-01 09:00:00\n")
    result = runner.invoke(policy_app, ["eval", "--log", str(log), "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "--mapping" in result.output
