"""Supervised fine-tuning of the LLM policy and critic, saved as servable Hugging Face artefacts.

Two starting points:

* from scratch (the default): a byte-level BPE tokenizer trained on the traces' views and a tiny
  Llama (2 layers, head size 32, which vLLM's CPU attention supports). It runs offline in seconds
  and is what development and the tests use; it learns the process, not language.
* ``base=DIR``: a pretrained causal LM from a local directory (a Hugging Face checkpoint, or a
  directory with one ``.gguf`` file), never downloaded. It is fine-tuned with LoRA (peft) and the
  adapters are merged into the weights before saving, so vLLM serves a plain model.

The loss covers the target only (the action JSON, or ``accept``/``reject``, plus EOS); prompts are
masked. The artefact directory holds ``save_pretrained`` output and ``artefact.json`` (written
last, so a half-written directory is never taken for a model).
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from tqdm import tqdm
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from selective_autonomy.inference.artefact import META_FILE, ArtefactError, ArtefactMeta, new_version, write_meta
from selective_autonomy.inference.llm.critic import CRITIC_KIND
from selective_autonomy.inference.llm.policy import POLICY_KIND
from selective_autonomy.inference.llm.prompts import (
    PROMPT_FORMAT,
    Label,
    PromptBuilder,
    action_text,
    critic_target,
    policy_prompt,
)
from selective_autonomy.inference.llm.tokenizer import prepare_base_tokenizer, train_tokenizer
from selective_autonomy.schemas.events import Action, UIStateChanged
from selective_autonomy.schemas.process import ProcessSchema
from selective_autonomy.schemas.view import render_view
from selective_autonomy.traces.format import Case

log = logging.getLogger(__name__)

IGNORE_INDEX = -100

CriticExample = tuple[UIStateChanged, Action, Label]
"""(state the operator saw, proposed action, accepted?) - True/"accept" or False/"reject"."""


class CriticRecord(BaseModel):
    """One line of a critic training file (JSONL): a state, the action proposed in it, the verdict."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event: UIStateChanged
    action: Action
    label: Literal["accept", "reject"]

    def triple(self) -> CriticExample:
        return (self.event, self.action, self.label)


def read_critic_records(path: Path) -> list[CriticExample]:
    """Feedback triples from a JSONL file of :class:`CriticRecord` lines (blank lines skipped)."""
    with path.open(encoding="utf-8") as lines:
        return [CriticRecord.model_validate_json(line).triple() for line in lines if line.strip()]


class SFTConfig(BaseModel):
    """Training settings. Defaults train the tiny from-scratch model on a Helpdesk slice in seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(default=3, ge=1)
    max_steps: int | None = Field(default=None, ge=1, description="Stop after this many optimiser steps.")
    max_seconds: float | None = Field(default=None, gt=0, description="Stop after this much training time.")
    batch_size: int = Field(default=16, ge=1)
    learning_rate: float | None = Field(default=None, gt=0, description="None: 3e-3 from scratch, 1e-3 LoRA.")
    warmup_ratio: float = Field(default=0.05, ge=0, lt=1)
    weight_decay: float = Field(default=0.0, ge=0)
    max_grad_norm: float = Field(default=1.0, gt=0)
    val_fraction: float = Field(default=0.1, ge=0, lt=1, description="Last share of examples held out for metrics.")
    seed: int = 0
    threads: int | None = Field(
        default=None,
        ge=1,
        description="torch threads while training (restored after). None: 1 from scratch (the tiny model is "
        "overhead-bound, and OpenMP spinning on a busy 2-core machine slows it down up to 50x), torch's default "
        "with a base.",
    )
    max_model_len: int = Field(default=512, ge=64, description="Prompt plus answer tokens; the serving context.")
    max_new_tokens: int = Field(default=96, ge=4, description="Room kept for the answer; prompts get the rest.")
    vocab_size: int = Field(default=1024, ge=300, description="From scratch: BPE vocabulary size.")
    hidden_size: int = Field(default=64, ge=16, description="From scratch: model width.")
    intermediate_size: int = Field(default=256, ge=16, description="From scratch: MLP width.")
    num_layers: int = Field(default=2, ge=1, description="From scratch: decoder layers.")
    num_heads: int = Field(default=2, ge=1, description="From scratch: attention heads.")
    head_dim: int = Field(default=32, description="From scratch: 32, 64, 80, ... (vLLM CPU attention sizes).")
    lora_r: int = Field(default=8, ge=1, description="With a base: LoRA rank.")
    lora_alpha: int = Field(default=16, ge=1, description="With a base: LoRA scaling numerator.")
    lora_dropout: float = Field(default=0.0, ge=0, lt=1)
    lora_targets: tuple[str, ...] = Field(default=("q_proj", "v_proj"), description="With a base: adapted modules.")

    @property
    def max_prompt_tokens(self) -> int:
        return self.max_model_len - self.max_new_tokens


@dataclass(frozen=True)
class TextExample:
    prompt: str
    target: str


@dataclass(frozen=True)
class _Tokenized:
    input_ids: list[int]
    labels: list[int]


# ---------------------------------------------------------------------------------------------
# examples


def policy_examples(cases: Sequence[Case], builder: PromptBuilder) -> list[TextExample]:
    """(prompt, action JSON) for every step of ``cases``; steps whose view cannot fit are skipped."""
    out = []
    for case in cases:
        for i, step in enumerate(case.steps):
            prompt = builder.policy(case.state_event(i))
            if prompt is not None:
                out.append(TextExample(prompt, action_text(step.action, builder.schema)))
    return out


def critic_examples(examples: Sequence[CriticExample], builder: PromptBuilder) -> list[TextExample]:
    """(prompt with the proposed action, accept/reject) for every feedback triple that fits."""
    out = []
    for event, action, label in examples:
        prompt = builder.critic(event, action)
        if prompt is not None:
            out.append(TextExample(prompt, critic_target(label)))
    return out


def contrastive_critic_examples(cases: Sequence[Case], seed: int = 0) -> list[CriticExample]:
    """Stand-in feedback from traces alone: the operator's action is accepted, another one rejected.

    For development before copilot feedback exists; the negative is drawn from the other actions
    seen in ``cases``, so it is always a plausible, schema-valid action.
    """
    rng = random.Random(seed)
    seen: dict[str, Action] = {}
    for case in cases:
        for step in case.steps:
            seen.setdefault(step.action.canonical_json(), step.action)
    pool = sorted(seen)
    out: list[CriticExample] = []
    for case in cases:
        for i, step in enumerate(case.steps):
            event = case.state_event(i)
            out.append((event, step.action, True))
            others = [key for key in pool if key != step.action.canonical_json()]
            if others:
                out.append((event, seen[rng.choice(others)], False))
    return out


# ---------------------------------------------------------------------------------------------
# models


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


# ---------------------------------------------------------------------------------------------
# training


def _tokenize(tokenizer: PreTrainedTokenizerBase, examples: Sequence[TextExample], max_len: int) -> list[_Tokenized]:
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ArtefactError("the tokenizer has no EOS token")
    out = []
    for example in examples:
        prompt = list(tokenizer(example.prompt)["input_ids"])
        target = [*tokenizer(example.target, add_special_tokens=False)["input_ids"], eos]
        ids = (prompt + target)[:max_len]
        labels = ([IGNORE_INDEX] * len(prompt) + target)[:max_len]
        out.append(_Tokenized(ids, labels))
    return out


def _collate(batch: Sequence[_Tokenized], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(item.input_ids) for item in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, item in enumerate(batch):
        n = len(item.input_ids)
        ids[row, :n] = torch.tensor(item.input_ids)
        labels[row, :n] = torch.tensor(item.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


@torch.no_grad()
def _evaluate(model: torch.nn.Module, data: Sequence[_Tokenized], pad_id: int, batch_size: int) -> dict[str, float]:
    """Mean target loss and exact match: every target token is the argmax, i.e. greedy decoding
    (unconstrained) would produce the target exactly."""
    if not data:
        return {}
    model.eval()
    total_loss, total_tokens, exact = 0.0, 0, 0
    for start in range(0, len(data), batch_size):
        batch = _collate(data[start : start + batch_size], pad_id)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        labels = batch["labels"][:, 1:]
        losses = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
        )
        counted = labels != IGNORE_INDEX
        total_loss += float(losses)
        total_tokens += int(counted.sum())
        right = (logits.argmax(-1) == labels) | ~counted
        exact += int(right.all(dim=1).sum())
    model.train()
    return {"val_loss": total_loss / max(total_tokens, 1), "val_exact_match": exact / len(data)}


def fit(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[TextExample],
    config: SFTConfig,
    learning_rate: float,
) -> dict[str, float]:
    """Train ``model`` in place on ``examples`` (the last ``val_fraction`` held out); return metrics."""
    if not examples:
        raise ArtefactError("no training examples (empty data, or no view fits max_model_len)")
    previous_threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        return _fit(model, tokenizer, examples, config, learning_rate)
    finally:
        torch.set_num_threads(previous_threads)


def _fit(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[TextExample],
    config: SFTConfig,
    learning_rate: float,
) -> dict[str, float]:
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        raise ArtefactError("the tokenizer has neither a pad nor an EOS token")
    data = _tokenize(tokenizer, examples, config.max_model_len)
    n_val = int(len(data) * config.val_fraction) if len(data) >= 10 else 0
    train, val = data[: len(data) - n_val], data[len(data) - n_val :]
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    total = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=learning_rate, weight_decay=config.weight_decay)
    warmup = max(1, int(total * config.warmup_ratio))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, schedule)
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    model.train()
    started = time.monotonic()
    step, recent = 0, list[float]()
    bar = tqdm(total=total, desc="fine-tune", unit="step", leave=False)
    while step < total:
        order = list(range(len(train)))
        rng.shuffle(order)
        for start in range(0, len(order), config.batch_size):
            batch = _collate([train[i] for i in order[start : start + config.batch_size]], pad_id)
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            optimiser.step()
            scheduler.step()
            optimiser.zero_grad(set_to_none=True)
            recent = [*recent[-19:], loss.item()]
            step += 1
            bar.update(1)
            if step % 20 == 0:
                bar.set_postfix(loss=f"{sum(recent) / len(recent):.4f}")
            if step >= total or (config.max_seconds is not None and time.monotonic() - started > config.max_seconds):
                total = step
                break
    bar.close()
    seconds = time.monotonic() - started
    metrics = {
        "train_loss": sum(recent) / max(len(recent), 1),
        "train_steps": float(step),
        "train_seconds": round(seconds, 2),
        "train_examples": float(len(train)),
        "val_examples": float(len(val)),
    }
    metrics.update(_evaluate(model, val, pad_id, config.batch_size))
    log.info("sft done: %s", metrics)
    return metrics


# ---------------------------------------------------------------------------------------------
# entry points


def _builder(schema: ProcessSchema, tokenizer: PreTrainedTokenizerBase, config: SFTConfig) -> PromptBuilder:
    def count(text: str) -> int:
        return len(tokenizer(text)["input_ids"])

    return PromptBuilder(schema, count_tokens=count, max_prompt_tokens=config.max_prompt_tokens)


def _start(
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
        "lora": {"r": config.lora_r, "alpha": config.lora_alpha, "targets": list(config.lora_targets), "merged": True},
    }
    return peft_model, tokenizer, config.learning_rate or 1e-3, params


def _finish(model: torch.nn.Module, base: Path | None) -> PreTrainedModel:
    if base is None:
        assert isinstance(model, PreTrainedModel)
        return model
    merged = model.merge_and_unload()  # type: ignore[operator]
    assert isinstance(merged, PreTrainedModel)
    return merged


def _save(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, out: Path, meta: ArtefactMeta) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / META_FILE).unlink(missing_ok=True)  # a stale artefact.json must not vouch for new weights
    model.train(False)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    write_meta(out, meta)  # last: its presence marks a complete artefact


def _threads(config: SFTConfig, base: Path | None) -> SFTConfig:
    if config.threads is None and base is None:
        return config.model_copy(update={"threads": 1})
    return config


def _time_range(stamps: Sequence[datetime]) -> tuple[datetime | None, datetime | None]:
    return (min(stamps), max(stamps)) if stamps else (None, None)


def train_policy(
    cases: Sequence[Case],
    schema: ProcessSchema,
    out: Path,
    config: SFTConfig | None = None,
    *,
    base: Path | None = None,
) -> ArtefactMeta:
    """Train the LLM policy on every step of ``cases`` and save it to ``out`` (kind ``policy-llm``).

    :param config: training settings; default ``SFTConfig()``.
    :param base: local pretrained model directory to LoRA-tune; default None (tiny model from scratch).
    """
    config = config or SFTConfig()
    corpus = [
        text
        for case in cases
        for i, step in enumerate(case.steps)
        for text in (policy_prompt(render_view(case.state_event(i), schema).text), action_text(step.action, schema))
    ]
    config = _threads(config, base)
    model, tokenizer, lr, params = _start(corpus, config, base)
    examples = policy_examples(cases, _builder(schema, tokenizer, config))
    metrics = fit(model, tokenizer, examples, config, lr)
    first, last = _time_range([c.started_at for c in cases])
    meta = ArtefactMeta(
        kind=POLICY_KIND,
        version=new_version(POLICY_KIND, f"{schema.schema_hash()}:{len(cases)}:{len(examples)}:{config}:{base}"),
        process_id=schema.process_id,
        schema_hash=schema.schema_hash(),
        train_from=first,
        train_to=last,
        train_cases=len(cases),
        train_examples=len(examples),
        metrics=metrics,
        params=_params(config, params, lr),
    )
    _save(_finish(model, base), tokenizer, out, meta)
    return meta


def train_llm_critic(
    examples: Sequence[CriticExample],
    schema: ProcessSchema,
    out: Path,
    config: SFTConfig | None = None,
    *,
    base: Path | None = None,
) -> ArtefactMeta:
    """Train the LLM critic on feedback triples and save it to ``out`` (kind ``critic-llm``).

    :param examples: (state, proposed action, label) with label True/"accept" or False/"reject".
    :param config: training settings; default ``SFTConfig()``.
    :param base: local pretrained model directory to LoRA-tune; default None (tiny model from scratch).
    """
    config = config or SFTConfig()
    plain = PromptBuilder(schema)
    corpus = [
        text for event, action, label in examples for text in (plain.critic(event, action) or "", critic_target(label))
    ]
    config = _threads(config, base)
    model, tokenizer, lr, params = _start(corpus, config, base)
    texts = critic_examples(examples, _builder(schema, tokenizer, config))
    metrics = fit(model, tokenizer, texts, config, lr)
    accepted = sum(1 for _, _, label in examples if critic_target(label) == "accept")
    metrics["accept_share"] = accepted / max(len(examples), 1)
    first, last = _time_range([event.timestamp for event, _, _ in examples])
    meta = ArtefactMeta(
        kind=CRITIC_KIND,
        version=new_version(CRITIC_KIND, f"{schema.schema_hash()}:{len(examples)}:{config}:{base}"),
        process_id=schema.process_id,
        schema_hash=schema.schema_hash(),
        train_from=first,
        train_to=last,
        train_cases=len({event.session_id for event, _, _ in examples}),
        train_examples=len(texts),
        metrics=metrics,
        params=_params(config, params, lr),
    )
    _save(_finish(model, base), tokenizer, out, meta)
    return meta


def _params(config: SFTConfig, start: dict[str, Any], lr: float) -> dict[str, Any]:
    return {
        **start,
        "prompt_format": PROMPT_FORMAT,
        "max_model_len": config.max_model_len,
        "max_new_tokens": config.max_new_tokens,
        "max_prompt_tokens": config.max_prompt_tokens,
        "learning_rate": lr,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "seed": config.seed,
    }
