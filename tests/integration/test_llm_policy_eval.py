"""``selauto eval policy --llm`` and ``selauto eval critic --llm``: the LLM policy and critic trained,
served by a REAL vLLM server, and scored next to the embedded models on a Helpdesk slice; the server
is gone afterwards."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from selective_autonomy.demo.cli import eval_critic
from selective_autonomy.inference.policy_cli import policy_app

pytestmark = [
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.timeout(900),
    pytest.mark.skipif(
        importlib.util.find_spec("vllm") is None or importlib.util.find_spec("transformers") is None,
        reason="vLLM is not installed in this environment (pip install -e '.[llm]' as the Makefile does)",
    ),
]


def _processes_mentioning(text: str) -> list[str]:
    found = subprocess.run(["pgrep", "-f", text], capture_output=True, text=True, check=False)
    return found.stdout.split()


def test_eval_policy_scores_the_llm_next_to_the_others(tmp_path: Path) -> None:
    work = tmp_path / "llm-work"
    args = ["eval", "--log", "helpdesk", "--limit", "100", "--max-epochs", "2", "--out", str(tmp_path)]
    llm = ["--llm", "--llm-train-seconds", "20", "--llm-work-dir", str(work)]
    result = CliRunner().invoke(policy_app, [*args, *llm])
    assert result.exit_code == 0, result.output

    report = json.loads((tmp_path / "policy_eval_helpdesk.json").read_text())
    by_name = {p["name"]: p for p in report["policies"]}
    assert list(by_name) == ["ngram", "embedded", "llm"]
    llm_report = by_name["llm"]
    assert llm_report["n"] == report["test_examples"] > 0
    assert llm_report["version"].startswith("policy-llm-")
    # Every proposal came back through the grammar-constrained server; the tiny model learns the
    # Helpdesk flow (its top-1 is near the others'), a loose floor here.
    assert llm_report["no_candidate"] <= 0.05 * llm_report["n"]
    assert llm_report["top1"] >= 0.4
    assert llm_report["top3"] >= llm_report["top1"]
    assert llm_report["selective_curve"]
    assert llm_report["latency_ms"]["propose_top3_mean"] > 0
    assert llm_report["extra"]["server_startup_seconds"] > 0
    assert llm_report["train_seconds"] > 0
    assert "llm" in result.output
    assert _processes_mentioning(str(work)) == []


def test_eval_critic_gates_the_llm_critic_next_to_the_embedded_one(tmp_path: Path) -> None:
    import typer

    app = typer.Typer()
    app.command()(eval_critic)
    work = tmp_path / "critic-work"
    args = ["--log", "helpdesk", "--limit", "100", "--out", str(tmp_path)]
    llm = ["--llm", "--llm-train-seconds", "4", "--llm-work-dir", str(work)]
    result = CliRunner().invoke(app, [*args, *llm])
    assert result.exit_code == 0, result.output

    report = json.loads((tmp_path / "critic_eval_helpdesk.json").read_text())
    assert report["feedback"]["certify"] > 0
    embedded, llm_gate = report["critics"]
    assert (embedded["name"], llm_gate["name"]) == ("embedded", "llm")
    assert llm_gate["version"].startswith("critic-llm-")
    # Every future step was scored through the server: the curve starts where the gate passes them all.
    assert llm_gate["curve"][0]["coverage"] == 1.0
    assert all(0.0 <= p["threshold"] <= 1.0 for p in llm_gate["curve"])
    assert "llm critic" in result.output
    assert (tmp_path / "critic_eval_helpdesk.png").is_file()
    assert _processes_mentioning(str(work)) == []
