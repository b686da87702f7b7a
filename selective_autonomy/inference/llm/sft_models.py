"""The models fine-tuning starts from and the artefacts it leaves: a tiny Llama from scratch, or a
local pretrained base with LoRA adapters merged back before saving."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from selective_autonomy.inference.artefact import META_FILE, ArtefactError, ArtefactMeta, write_meta
from selective_autonomy.inference.llm.base_identity import recorded_fingerprint, weights_fingerprint, write_base_file
from selective_autonomy.inference.llm.base_install import copy_licence_files
from selective_autonomy.inference.llm.sft_config import SFTConfig
from selective_autonomy.inference.llm.tokenizer import prepare_base_tokenizer, train_tokenizer


def tiny_llama(tokenizer: PreTrainedTokenizerBase, config: SFTConfig) -> LlamaForCausalLM:
    """A small Llama sized by ``config`` for ``tokenizer``; the weights are random (seeded)."""
    torch.manual_seed(config.seed)
    llama = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        head_dim=config.head_dim,
        max_position_embeddings=config.max_model_len,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(llama)  # type: ignore[no-untyped-call]


def load_base(base: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A pretrained model and tokenizer from a local directory only (never the network).

    The directory holds a Hugging Face checkpoint (``config.json``) or exactly one ``.gguf`` file,
    which is dequantised to float32.
    """
    if not base.is_dir():
        raise ArtefactError(f"base model {base} is not a directory")
    kwargs: dict[str, Any] = {"local_files_only": True}
    if not (base / "config.json").is_file():
        ggufs = sorted(base.glob("*.gguf"))
        if len(ggufs) != 1:
            raise ArtefactError(f"base model {base} has no config.json and {len(ggufs)} .gguf files (need one)")
        kwargs["gguf_file"] = ggufs[0].name
    tokenizer = prepare_base_tokenizer(AutoTokenizer.from_pretrained(str(base), **kwargs))
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32, **kwargs)
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:  # GGUF: the dequantised weights are plain float32 now
        quantizer.remove_quantization_config(model)
    return model, tokenizer


def export_base(base: Path, out: Path) -> Path:
    """The base as a Hugging Face checkpoint a vLLM server with LoRA on can hold: the weights the
    adapters were trained on (a GGUF dequantised to float32, as :func:`load_base` reads it) and the
    tokenizer as training prepared it, with the base's licence files. Returns ``out``.

    vLLM applies LoRA adapters to a plain checkpoint, not to a quantised GGUF; serving the same
    float32 weights the adapters were fitted to keeps their answers those of training.
    """
    model, tokenizer = load_base(base)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    copy_licence_files(base, out)
    write_base_file(out, base, weights_fingerprint(model))  # so `serve --base` knows its adapters without a reload
    return out


def served_base_fingerprint(base: Path) -> str:
    """The fingerprint of a servable base: the one its export recorded, else computed by loading it."""
    recorded = recorded_fingerprint(base)
    if recorded is not None:
        return recorded
    model, _ = load_base(base)
    return weights_fingerprint(model)


def start_model(
    corpus: Sequence[str], config: SFTConfig, base: Path | None
) -> tuple[torch.nn.Module, PreTrainedTokenizerBase, float, dict[str, Any]]:
    """Model to train, its tokenizer, the learning rate and what to record about the start."""
    if base is None:
        tokenizer: PreTrainedTokenizerBase = train_tokenizer(
            corpus, vocab_size=config.vocab_size, model_max_length=config.max_model_len
        )
        lr = config.learning_rate or 3e-3
        params: dict[str, Any] = {
            "base": None,
            "architecture": {
                "hidden_size": config.hidden_size,
                "layers": config.num_layers,
                "heads": config.num_heads,
                "head_dim": config.head_dim,
                "vocab_size": len(tokenizer),
            },
        }
        return tiny_llama(tokenizer, config), tokenizer, lr, params
    from peft import LoraConfig, get_peft_model

    model, tokenizer = load_base(base)
    fingerprint = weights_fingerprint(model)  # before LoRA wraps it: the weights an adapter belongs to
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.lora_targets),
        task_type="CAUSAL_LM",
    )
    torch.manual_seed(config.seed)
    peft_model = get_peft_model(model, lora)
    params = {
        "base": base.name,
        "base_fingerprint": fingerprint,
        "lora": {
            "r": config.lora_r,
            "alpha": config.lora_alpha,
            "targets": list(config.lora_targets),
            "merged": config.merge_lora,
        },
    }
    return peft_model, tokenizer, config.learning_rate or 1e-3, params


def servable_model(model: torch.nn.Module, base: Path | None, *, merge: bool) -> PreTrainedModel | PeftModel:
    """What to save: the model trained from scratch, the base with the adapter merged into its
    weights, or (``merge=False``) the adapter alone, whose ``save_pretrained`` writes
    ``adapter_config.json`` and ``adapter_model.safetensors`` (what vLLM loads as a LoRA adapter)."""
    if base is None or not merge:
        if not isinstance(model, (PreTrainedModel, PeftModel)):
            raise TypeError(f"cannot save a {type(model).__name__}")
        return model
    merged = model.merge_and_unload()  # type: ignore[operator]
    if not isinstance(merged, PreTrainedModel):
        raise TypeError(f"merging the adapter gave a {type(merged).__name__}")
    return merged


def save_artefact(
    model: PreTrainedModel | PeftModel,
    tokenizer: PreTrainedTokenizerBase,
    out: Path,
    meta: ArtefactMeta,
    base: Path | None = None,
) -> None:
    """Write the model, its tokenizer, the base's licence files (a derivative carries its base's
    terms: :mod:`~selective_autonomy.inference.llm.base_install`) and, last, the metadata."""
    out.mkdir(parents=True, exist_ok=True)
    (out / META_FILE).unlink(missing_ok=True)  # a stale artefact.json must not vouch for new weights
    model.train(False)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    copy_licence_files(base, out)
    write_meta(out, meta)  # last: its presence marks a complete artefact
