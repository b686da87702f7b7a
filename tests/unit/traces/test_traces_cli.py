"""The ``import`` sub-app: each command writes cases and schemas and prints its counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from selective_autonomy.schemas.process import ProcessSchema
from selective_autonomy.traces.cli import import_app
from selective_autonomy.traces.format import read_cases
from selective_autonomy.traces.mapping import EventLogMapping, load_mapping

from .support import SAMPLE, UI_LOG, assert_same_cases

runner = CliRunner()

CSV = """ticket_id,activity,finished_at,agent,status,channel,priority,customer_email,queue
T1,Open,2024-03-01 09:00:00,ann,complete,chat,low,a@example.com,L1
T1,Answer,2024-03-01 09:30:00,bob,complete,chat,high,a@example.com,L2
T2,Open,2024-03-02 10:00:00,ann,complete,phone,,b@example.com,
"""


def test_every_command_and_option_has_help() -> None:
    group = typer.main.get_command(import_app)
    commands = getattr(group, "commands", {})
    assert group.help
    assert set(commands) == {"xes", "csv", "sgd", "abcd", "split"}
    for name, command in commands.items():
        assert command.help, name
        for param in command.params:
            if param.name != "help":
                assert getattr(param, "help", None), f"{name} {param.name}"


def test_csv_then_split(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_text(CSV)
    out, schema_out = tmp_path / "cases.jsonl.gz", tmp_path / "schema.yaml"
    result = runner.invoke(
        import_app, ["csv", str(log), "--mapping", "csv_example", "--out", str(out), "--schema-out", str(schema_out)]
    )
    assert result.exit_code == 0, result.output
    assert "cases=2 steps=4 actions=3" in result.output  # T2 may be open at the log's end: no close
    assert ProcessSchema.load(schema_out).process_id == "csv_example"
    assert [c.case_id for c in read_cases(out)] == ["T1", "T2"]

    result = runner.invoke(
        import_app,
        ["split", str(out), "--out-dir", str(tmp_path / "parts"), "--fractions", "0.5,0.5", "--names", "a,b"],
    )
    assert result.exit_code == 0, result.output
    assert [c.case_id for c in read_cases(tmp_path / "parts" / "cases.a.jsonl.gz")] == ["T1"]
    assert [c.case_id for c in read_cases(tmp_path / "parts" / "cases.b.jsonl.gz")] == ["T2"]


def test_split_rejects_mismatched_names(tmp_path: Path) -> None:
    cases = tmp_path / "c.jsonl"
    cases.write_text("")
    result = runner.invoke(import_app, ["split", str(cases), "--out-dir", str(tmp_path), "--names", "a,b"])
    assert result.exit_code == 1 and "3 fractions but 2 names" in result.output


def test_xes_slice(tmp_path: Path, helpdesk_path: Path) -> None:
    out = tmp_path / "helpdesk.jsonl"
    result = runner.invoke(
        import_app, ["xes", str(helpdesk_path), "-m", "helpdesk", "-o", str(out), "--limit-cases", "20"]
    )
    assert result.exit_code == 0, result.output
    assert "cases=20 " in result.output and "violation" not in result.output
    assert len(list(read_cases(out))) == 20


def test_bad_mapping_fails_cleanly(tmp_path: Path, helpdesk_path: Path) -> None:
    result = runner.invoke(import_app, ["xes", str(helpdesk_path), "-m", "nope", "-o", str(tmp_path / "x.jsonl")])
    assert result.exit_code == 1 and "error:" in result.output


def test_sgd_slice(tmp_path: Path, sgd_path: Path) -> None:
    out, schemas = tmp_path / "sgd.jsonl", tmp_path / "schemas"
    first = sorted((sgd_path / "dev").glob("dialogues_*.json.gz"))[0]
    result = runner.invoke(
        import_app,
        ["sgd", str(first), "--out", str(out), "--schema-out", str(schemas), "--limit-dialogues", "5"],
    )
    assert result.exit_code == 0, result.output
    assert "violation" not in result.output
    assert len(list(schemas.glob("*.yaml"))) == 17
    assert {c.attributes["dialogue_id"] for c in read_cases(out)} == {f"1_0000{i}" for i in range(5)}


def test_abcd(tmp_path: Path, abcd_path: Path) -> None:
    out, schema, sequences = tmp_path / "abcd.jsonl", tmp_path / "abcd.yaml", tmp_path / "seq.json"
    result = runner.invoke(
        import_app,
        [
            "abcd",
            "--data-dir",
            str(abcd_path),
            "--out",
            str(out),
            "--schema-out",
            str(schema),
            "--sequences-out",
            str(sequences),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "cases=3 " in result.output
    assert len(ProcessSchema.load(schema).controls) == 30
    assert len(json.loads(sequences.read_text())) == 55


@pytest.mark.parametrize("log", ["sample", "helpdesk"])
def test_xes_without_mapping_gives_the_builtin_cases(tmp_path: Path, log: str, request: pytest.FixtureRequest) -> None:
    """`selauto import xes LOG --out x.jsonl` with no mapping: the cases of the built-in Helpdesk
    mapping, on the shipped sample and on the real log."""
    path = SAMPLE if log == "sample" else request.getfixturevalue("helpdesk_path")
    default_out, builtin_out = tmp_path / "default.jsonl", tmp_path / "builtin.jsonl"
    result = runner.invoke(import_app, ["xes", str(path), "--out", str(default_out)])
    assert result.exit_code == 0, result.output
    assert "default XES mapping" in result.stderr and "case:variant (" in result.stderr
    assert "violation" not in result.output
    result = runner.invoke(import_app, ["xes", str(path), "--mapping", "helpdesk", "--out", str(builtin_out)])
    assert result.exit_code == 0, result.output
    assert_same_cases(list(read_cases(default_out)), list(read_cases(builtin_out)))


def test_print_mapping_then_import_with_it(tmp_path: Path) -> None:
    result = runner.invoke(import_app, ["xes", str(SAMPLE), "--print-mapping"])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # stdout is the whole file: `... --print-mapping > mapping.yaml`
    saved = tmp_path / "mapping.yaml"
    saved.write_text(result.stdout)
    mapping = EventLogMapping.from_yaml(result.stdout)
    assert mapping.process_id == "helpdesk_sample" and mapping.lifecycle == "lifecycle:transition"
    assert "case:variant-index" in result.stdout and "Activity, Resource" in result.stdout  # the comments

    out_saved, out_default = tmp_path / "saved.jsonl", tmp_path / "default.jsonl"
    result = runner.invoke(import_app, ["xes", str(SAMPLE), "-m", str(saved), "-o", str(out_saved)])
    assert result.exit_code == 0 and "default XES mapping" not in result.output
    assert runner.invoke(import_app, ["xes", str(SAMPLE), "-o", str(out_default)]).exit_code == 0
    assert list(read_cases(out_saved)) == list(read_cases(out_default))

    result = runner.invoke(import_app, ["xes", str(SAMPLE), "-m", "helpdesk", "--print-mapping"])
    assert result.exit_code == 0 and EventLogMapping.from_yaml(result.stdout) == load_mapping("helpdesk")


def test_xes_needs_out_or_print_mapping() -> None:
    result = runner.invoke(import_app, ["xes", str(SAMPLE)])
    assert result.exit_code == 1 and "--out" in result.output


def test_csv_with_a_composite_activity(tmp_path: Path) -> None:
    log, out, schema_out = tmp_path / "ui.csv", tmp_path / "ui.jsonl", tmp_path / "ui.yaml"
    log.write_text(UI_LOG)
    result = runner.invoke(
        import_app, ["csv", str(log), "-m", "ui_log_example", "-o", str(out), "--schema-out", str(schema_out)]
    )
    assert result.exit_code == 0, result.output
    assert "dropped 1 event(s)" in result.stderr and "violation" not in result.output
    assert "cases=2 steps=8 " in result.stdout
    actions = {step.action.action_type for case in read_cases(out) for step in case.steps}
    assert {"click | Submit", "change | Customer", "scroll"} <= actions
    assert ProcessSchema.load(schema_out).action("click | Submit") is not None
