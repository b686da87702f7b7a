"""Tiny SFT runs end to end: artefacts that load in transformers and in the registry, LoRA merged."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("transformers", reason="the llm extra is not installed")
pytest.importorskip("peft", reason="the llm extra is not installed")

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from selective_autonomy.inference.artefact import ArtefactError, read_meta
from selective_autonomy.inference.llm.critic import LLMCritic
from selective_autonomy.inference.llm.loaders import llm_loaders
from selective_autonomy.inference.llm.policy import LLMPolicy
from selective_autonomy.inference.llm.prompts import PROMPT_FORMAT, PromptBuilder, action_text
from selective_autonomy.inference.llm.settings import LLMClientSettings
from selective_autonomy.inference.llm.sft import (
    CriticRecord,
    SFTConfig,
    TextExample,
    contrastive_critic_examples,
    fit,
    read_critic_records,
    tiny_llama,
    train_llm_critic,
    train_policy,
)
from selective_autonomy.inference.llm.tokenizer import train_tokenizer
from selective_autonomy.inference.loaders import builtin_loaders
from selective_autonomy.schemas.process import ProcessSchema

from .conftest import Helpdesk

SETTINGS = LLMClientSettings(url="http://127.0.0.1:9/v1")


def test_policy_artefact_is_a_servable_hf_model(tiny_policy_dir: Path, helpdesk: Helpdesk) -> None:
    meta = read_meta(tiny_policy_dir, helpdesk.schema, kind_prefix="policy-llm")
    assert meta.kind == "policy-llm"
    assert meta.train_cases == len(helpdesk.cases)
    assert meta.train_examples == sum(len(c.steps) for c in helpdesk.cases)
    assert meta.params["prompt_format"] == PROMPT_FORMAT
    assert meta.params["max_prompt_tokens"] == 256 - 48
    assert meta.params["architecture"]["head_dim"] == 32
    assert {"train_loss", "val_loss", "val_exact_match", "train_steps"} <= set(meta.metrics)
    assert meta.metrics["train_steps"] == 4
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "artefact.json"):
        assert (tiny_policy_dir / name).is_file(), name
    config = json.loads((tiny_policy_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["head_dim"] == 32 and config["num_hidden_layers"] == 2
    assert config["max_position_embeddings"] == 256


def test_saved_model_generates_after_its_prompt(tiny_policy_dir: Path, helpdesk: Helpdesk) -> None:
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_policy_dir), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_policy_dir), local_files_only=True)
    prompt = PromptBuilder(helpdesk.schema).policy(helpdesk.events(1)[0])
    assert prompt is not None
    inputs = tokenizer(prompt, return_tensors="pt")
    assert int(inputs["input_ids"][0, 0]) == tokenizer.bos_token_id
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=5, do_sample=False, pad_token_id=tokenizer.pad_token_id)  # type: ignore[misc]
    assert isinstance(out, torch.Tensor)
    assert out.shape[1] > inputs["input_ids"].shape[1]


def test_sft_lowers_the_loss(helpdesk: Helpdesk) -> None:
    examples = [
        TextExample(PromptBuilder(helpdesk.schema).policy(case.state_event(i)) or "", action_text(s.action,
                                                                                                  helpdesk.schema))
        for case in helpdesk.cases[:6] for i, s in enumerate(case.steps)
    ]  # fmt: skip
    config = SFTConfig(
        epochs=30, max_steps=15, batch_size=8, val_fraction=0.0, max_model_len=256, vocab_size=400, threads=1
    )
    tokenizer = train_tokenizer([t for e in examples for t in (e.prompt, e.target)], vocab_size=400)
    model = tiny_llama(tokenizer, config)
    one_step = config.model_copy(update={"max_steps": 1})
    before = fit(model, tokenizer, examples, one_step, 1e-12)["train_loss"]
    fit(model, tokenizer, examples, config, 3e-3)
    after = fit(model, tokenizer, examples, one_step, 1e-12)["train_loss"]
    assert after < 0.7 * before


def test_loaders_build_server_backed_models(tiny_policy_dir: Path, helpdesk: Helpdesk) -> None:
    loaders = builtin_loaders().merged(llm_loaders(SETTINGS, SETTINGS))
    policy = loaders.load_policy(tiny_policy_dir, helpdesk.schema)
    assert isinstance(policy, LLMPolicy)
    meta = read_meta(tiny_policy_dir)
    assert policy.version == meta.version
    assert policy.client.model == meta.version  # served under its version unless settings name a model
    assert policy.max_new_tokens == 48
    assert policy.builder.max_prompt_tokens == 208 and policy.builder.count_tokens is not None
    with pytest.raises(ArtefactError, match="holds a policy-llm"):
        LLMCritic.load(tiny_policy_dir, helpdesk.schema, SETTINGS)


def test_loading_for_another_schema_is_refused(tiny_policy_dir: Path) -> None:
    with pytest.raises(ArtefactError, match="trained for process schema"):
        LLMPolicy.load(tiny_policy_dir, ProcessSchema(process_id="helpdesk"), SETTINGS)


def test_lora_on_a_local_base_is_merged(tiny_policy_dir: Path, helpdesk: Helpdesk, tmp_path: Path) -> None:
    out = tmp_path / "lora-policy"
    config = SFTConfig(epochs=1, max_steps=2, batch_size=8, max_model_len=256, max_new_tokens=48, threads=1)
    meta = train_policy(helpdesk.cases[:8], helpdesk.schema, out, config, base=tiny_policy_dir)
    assert meta.params["lora"] == {"r": 8, "alpha": 16, "targets": ["q_proj", "v_proj"], "merged": True}
    assert meta.params["base"] == tiny_policy_dir.name
    merged = AutoModelForCausalLM.from_pretrained(str(out), local_files_only=True)
    base = AutoModelForCausalLM.from_pretrained(str(tiny_policy_dir), local_files_only=True)
    names = set(merged.state_dict())
    assert names == set(base.state_dict())
    assert not any("lora" in name for name in names)
    changed = [n for n, w in merged.state_dict().items() if not torch.equal(w, base.state_dict()[n])]
    assert changed and all(("q_proj" in n or "v_proj" in n) for n in changed)
    assert (out / "tokenizer.json").read_text() == (tiny_policy_dir / "tokenizer.json").read_text()


def test_lora_saved_unmerged_is_an_adapter_the_loaders_load_into_the_server(
    tiny_policy_dir: Path, helpdesk: Helpdesk, tmp_path: Path
) -> None:
    from peft import PeftModel

    out = tmp_path / "adapter"
    config = SFTConfig(
        epochs=1, max_steps=2, batch_size=8, max_model_len=256, max_new_tokens=48, threads=1, merge_lora=False
    )
    meta = train_policy(helpdesk.cases[:8], helpdesk.schema, out, config, base=tiny_policy_dir)
    assert meta.params["lora"]["merged"] is False
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    assert not (out / "model.safetensors").exists()  # the adapter alone: the server holds the base
    adapter_config = json.loads((out / "adapter_config.json").read_text())
    assert adapter_config["r"] == 8 and set(adapter_config["target_modules"]) == {"q_proj", "v_proj"}
    # The adapter applies to the base it was trained on: the same answer as a merged copy would give.
    base = AutoModelForCausalLM.from_pretrained(str(tiny_policy_dir), local_files_only=True)
    tuned = PeftModel.from_pretrained(base, str(out))
    assert any("lora_B" in name and w.abs().sum() > 0 for name, w in tuned.state_dict().items())

    loaded: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        loaded.append({"path": request.url.path, **json.loads(request.content)})
        return httpx.Response(200, text=f"Success: LoRA adapter '{meta.version}' added successfully.")

    settings = LLMClientSettings(url="http://vllm.test/v1", max_retries=0)
    policy = llm_loaders(settings, settings, transport=httpx.MockTransport(handler)).policies["policy-llm"](
        out, helpdesk.schema
    )
    assert isinstance(policy, LLMPolicy)
    assert policy.client.model == meta.version and policy.client.adapter == out.resolve()
    assert loaded == [{"path": "/v1/load_lora_adapter", "lora_name": meta.version, "lora_path": str(out.resolve())}]
    # A whole model is never loaded as an adapter, and a server that is down does not stop a worker.
    assert LLMPolicy.load(tiny_policy_dir, helpdesk.schema, SETTINGS).client.adapter is None
    down = llm_loaders(SETTINGS, SETTINGS).policies["policy-llm"](out, helpdesk.schema)
    assert isinstance(down, LLMPolicy) and down.client.adapter == out.resolve()


def test_checkpoints_save_the_adapter_as_it_was_after_each_named_step(
    tiny_policy_dir: Path, helpdesk: Helpdesk, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    config = SFTConfig(
        epochs=1, max_steps=3, batch_size=4, max_model_len=256, max_new_tokens=48, threads=1, merge_lora=False,
        val_fraction=0.0,
    )  # fmt: skip
    checkpoints = {1: tmp_path / "step-1", 2: tmp_path / "step-2"}
    final = train_policy(
        helpdesk.cases[:8], helpdesk.schema, tmp_path / "final", config, base=tiny_policy_dir, checkpoints=checkpoints
    )
    metas = {step: read_meta(directory) for step, directory in checkpoints.items()}
    assert {step: (m.metrics["train_steps"], m.metrics["train_examples_seen"]) for step, m in metas.items()} == {
        1: (1.0, 4.0),
        2: (2.0, 8.0),
    }
    assert len({metas[1].version, metas[2].version, final.version}) == 3  # each is its own servable version
    weights = [load_file(str(d / "adapter_model.safetensors")) for d in (*checkpoints.values(), tmp_path / "final")]
    # Training went on after each save: every checkpoint holds other weights than the next.
    for earlier, later in itertools.pairwise(weights):
        assert any(not torch.equal(earlier[name], later[name]) for name in earlier)


def test_checkpoints_of_a_merged_lora_run_are_refused(
    tiny_policy_dir: Path, helpdesk: Helpdesk, tmp_path: Path
) -> None:
    config = SFTConfig(epochs=1, max_steps=2, batch_size=4, max_model_len=256, threads=1)
    with pytest.raises(ArtefactError, match="merge_lora=False"):
        train_policy(
            helpdesk.cases[:4], helpdesk.schema, tmp_path / "out", config, base=tiny_policy_dir,
            checkpoints={1: tmp_path / "step-1"},
        )  # fmt: skip


def test_a_missing_base_is_refused(helpdesk: Helpdesk, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtefactError, match=r"no config\.json"):
        train_policy(helpdesk.cases[:2], helpdesk.schema, tmp_path / "out", base=tmp_path / "empty")
    assert not (tmp_path / "out" / "artefact.json").exists()


def test_critic_trains_on_feedback_triples(helpdesk: Helpdesk, tiny_sft_config: Any, tmp_path: Path) -> None:
    examples = contrastive_critic_examples(helpdesk.cases[:10])
    assert {label for _, _, label in examples} == {True, False}
    for event, action, label in examples[:2]:
        assert event.session_id == helpdesk.cases[0].case_id
        assert (action == helpdesk.cases[0].steps[0].action) is label
    meta = train_llm_critic(examples, helpdesk.schema, tmp_path / "critic", tiny_sft_config)
    assert meta.kind == "critic-llm"
    assert meta.train_examples == len(examples)
    assert meta.metrics["accept_share"] == 0.5
    critic = LLMCritic.load(tmp_path / "critic", helpdesk.schema, SETTINGS)
    assert critic.version == meta.version


def test_critic_records_round_trip(helpdesk: Helpdesk, tmp_path: Path) -> None:
    examples = contrastive_critic_examples(helpdesk.cases[:2])
    path = tmp_path / "feedback.jsonl"
    path.write_text(
        "\n".join(
            CriticRecord(event=e, action=a, label="accept" if label else "reject").model_dump_json()
            for e, a, label in examples
        )
        + "\n\n"
    )
    again = read_critic_records(path)
    assert [(e, a) for e, a, _ in again] == [(e, a) for e, a, _ in examples]
    assert [label == "accept" for _, _, label in again] == [label for _, _, label in examples]


def test_no_examples_is_an_error(helpdesk: Helpdesk, tmp_path: Path) -> None:
    with pytest.raises(ArtefactError, match="no training examples"):
        train_llm_critic([], helpdesk.schema, tmp_path / "c", SFTConfig(max_steps=1))
