"""An adapter knows the weights it was trained on, and `serve --base` refuses it on other weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("peft", reason="the llm extra is not installed")

from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM
from typer.testing import CliRunner

from selective_autonomy.inference.artefact import ArtefactError, read_meta
from selective_autonomy.inference.llm.base_identity import (
    BASE_FILE,
    check_adapters,
    weights_fingerprint,
)
from selective_autonomy.inference.llm.cli import llm_app
from selective_autonomy.inference.llm.sft import SFTConfig, train_policy
from selective_autonomy.inference.llm.sft_models import export_base, served_base_fingerprint

from .conftest import Helpdesk


@pytest.fixture(scope="module")
def adapter(tiny_policy_dir: Path, helpdesk: Helpdesk, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("identity") / "adapter"
    config = SFTConfig(epochs=1, max_steps=1, batch_size=4, max_model_len=256, threads=1, merge_lora=False)
    train_policy(helpdesk.cases[:4], helpdesk.schema, out, config, base=tiny_policy_dir)
    return out


def test_the_adapter_records_the_fingerprint_of_its_base_and_the_export_keeps_it(
    adapter: Path, tiny_policy_dir: Path, tmp_path: Path
) -> None:
    recorded = read_meta(adapter).params["base_fingerprint"]
    base = AutoModelForCausalLM.from_pretrained(str(tiny_policy_dir), local_files_only=True)
    assert recorded == weights_fingerprint(base) and recorded.startswith("sha256:")
    served = export_base(tiny_policy_dir, tmp_path / "servable")
    assert json.loads((served / BASE_FILE).read_text())["fingerprint"] == recorded
    # Read from the export's file, or computed by loading a checkpoint that has none: the same answer.
    assert served_base_fingerprint(served) == served_base_fingerprint(tiny_policy_dir) == recorded
    check_adapters([read_meta(adapter)], recorded)


def test_serve_refuses_an_adapter_on_other_weights(adapter: Path, tiny_policy_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other-base"
    shutil.copytree(tiny_policy_dir, other)
    weights = load_file(other / "model.safetensors")
    name = sorted(weights)[0]
    weights[name] = weights[name] + 1e-3  # one tensor nudged: same names and shapes, which vLLM would accept
    save_file(weights, other / "model.safetensors", metadata={"format": "pt"})
    assert served_base_fingerprint(other) != read_meta(adapter).params["base_fingerprint"]
    result = CliRunner().invoke(llm_app, ["serve", "--base", str(other), str(adapter)])
    assert result.exit_code == 2
    assert "trained on another base" in result.output


def test_adapters_from_before_fingerprints_pass_and_others_are_named(adapter: Path) -> None:
    meta = read_meta(adapter)
    older = meta.model_copy(update={"params": {k: v for k, v in meta.params.items() if k != "base_fingerprint"}})
    check_adapters([older], "sha256:0000000000000000")
    with pytest.raises(ArtefactError, match=meta.version):
        check_adapters([meta], "sha256:0000000000000000")
