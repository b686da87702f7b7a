"""Supervised fine-tuning of the LLM policy and critic, saved as servable Hugging Face artefacts.

Two starting points:

* from scratch (the default): a byte-level BPE tokenizer trained on the traces' views and a tiny
  Llama (2 layers, head size 32, which vLLM's CPU attention supports). It runs offline in seconds
  and is what development and the tests use; it learns the process, not language.
* ``base=DIR``: a pretrained causal LM from a local directory (a Hugging Face checkpoint, or a
  directory with one ``.gguf`` file), never downloaded. It is fine-tuned with LoRA (peft); the
  adapter is merged into the weights before saving (a plain model, one vLLM server each), or with
  ``merge_lora=False`` saved alone, for one server holding the base and every adapter.

The loss covers the target only (the action JSON, or ``accept``/``reject``, plus EOS); prompts are
masked. The artefact directory holds ``save_pretrained`` output and ``artefact.json`` (written
last, so a half-written directory is never taken for a model).

This module holds the two entry points; the data (:mod:`.sft_data`), the settings
(:mod:`.sft_config`), the models and artefacts (:mod:`.sft_models`) and the training loop
(:mod:`.sft_loop`) live beside it, and their public names are importable from here.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerBase

from selective_autonomy.inference.artefact import ArtefactError, ArtefactMeta, new_version
from selective_autonomy.inference.llm.critic import CRITIC_KIND
from selective_autonomy.inference.llm.policy import POLICY_KIND
from selective_autonomy.inference.llm.prompts import (
    PROMPT_FORMAT,
    PromptBuilder,
    action_text,
    critic_target,
    policy_prompt,
)
from selective_autonomy.inference.llm.sft_config import SFTConfig
from selective_autonomy.inference.llm.sft_data import (
    CriticRecord,
    CriticTriple,
    TextExample,
    contrastive_critic_examples,
    critic_text_examples,
    policy_examples,
    read_critic_records,
)
from selective_autonomy.inference.llm.sft_loop import StepHook, fit
from selective_autonomy.inference.llm.sft_models import (
    load_base,
    save_artefact,
    servable_model,
    start_model,
    tiny_llama,
)
from selective_autonomy.schemas.process import ProcessSchema
from selective_autonomy.schemas.view import render_view
from selective_autonomy.traces.format import Case

__all__ = [
    "CriticRecord",
    "CriticTriple",
    "SFTConfig",
    "TextExample",
    "contrastive_critic_examples",
    "critic_text_examples",
    "fit",
    "load_base",
    "policy_examples",
    "read_critic_records",
    "tiny_llama",
    "train_llm_critic",
    "train_policy",
]


def train_policy(
    cases: Sequence[Case],
    schema: ProcessSchema,
    out: Path,
    config: SFTConfig | None = None,
    *,
    base: Path | None = None,
    checkpoints: Mapping[int, Path] | None = None,
) -> ArtefactMeta:
    """Train the LLM policy on every step of ``cases`` and save it to ``out`` (kind ``policy-llm``).

    :param config: training settings; default ``SFTConfig()``.
    :param base: local pretrained model directory to LoRA-tune; default None (tiny model from scratch).
    :param checkpoints: optimiser step -> directory: also save the policy as it is after that many steps
        (an artefact of its own, its metrics say how far training had got), e.g. to measure accuracy against
        training examples seen in one run. With a base only for adapters (``merge_lora=False``): merging
        mid-run would fold the adapter into the weights being trained. Default None.
    """
    config = config or SFTConfig()
    if checkpoints and base is not None and config.merge_lora:
        raise ArtefactError("checkpoints of a LoRA run are saved as adapters: set merge_lora=False (--adapter)")
    corpus = [
        text
        for case in cases
        for i, step in enumerate(case.steps)
        for text in (policy_prompt(render_view(case.state_event(i), schema).text), action_text(step.action, schema))
    ]
    run = _Run(schema, corpus, config, base)
    examples = policy_examples(cases, run.builder)
    digest = f"{schema.schema_hash()}:{len(cases)}:{len(examples)}:{run.config}:{base}"

    def save(directory: Path, metrics: dict[str, float], suffix: str = "") -> None:
        run.save(
            directory,
            kind=POLICY_KIND,
            digest=digest + suffix,
            stamps=[c.started_at for c in cases],
            train_cases=len(cases),
            train_examples=len(examples),
            metrics=metrics,
        )

    started = time.monotonic()

    def checkpoint(step: int, seen: int) -> None:
        if checkpoints and step in checkpoints:
            progress = {"train_steps": float(step), "train_examples_seen": float(seen)}
            save(checkpoints[step], {**progress, "train_seconds": round(time.monotonic() - started, 2)}, f":{step}")
            run.model.train()  # saving switched it to eval mode

    metrics = run.fit(examples, checkpoint if checkpoints else None)
    save(out, metrics)
    return run.meta


def train_llm_critic(
    examples: Sequence[CriticTriple],
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
    run = _Run(schema, corpus, config, base)
    texts = critic_text_examples(examples, run.builder)
    metrics = run.fit(texts)
    accepted = sum(1 for _, _, label in examples if critic_target(label) == "accept")
    metrics["accept_share"] = accepted / max(len(examples), 1)
    run.save(
        out,
        kind=CRITIC_KIND,
        digest=f"{schema.schema_hash()}:{len(examples)}:{run.config}:{base}",
        stamps=[event.timestamp for event, _, _ in examples],
        train_cases=len({event.session_id for event, _, _ in examples}),
        train_examples=len(texts),
        metrics=metrics,
    )
    return run.meta


class _Run:
    """What training the policy and training the critic share: the start (tiny model or LoRA on a
    base), the prompt builder sized by the tokenizer, the loop, and the artefact."""

    def __init__(self, schema: ProcessSchema, corpus: Sequence[str], config: SFTConfig, base: Path | None) -> None:
        if config.threads is None and base is None:
            config = config.model_copy(update={"threads": 1})
        self.schema, self.config, self.base = schema, config, base
        self.model, self.tokenizer, self.lr, self.start = start_model(corpus, config, base)
        self.builder = prompt_builder_for(schema, self.tokenizer, config)
        self.meta: ArtefactMeta

    def fit(self, examples: Sequence[TextExample], on_step: StepHook | None = None) -> dict[str, float]:
        return fit(self.model, self.tokenizer, examples, self.config, self.lr, on_step)

    def save(
        self,
        out: Path,
        *,
        kind: str,
        digest: str,
        stamps: Sequence[datetime],
        train_cases: int,
        train_examples: int,
        metrics: dict[str, float],
    ) -> None:
        first, last = (min(stamps), max(stamps)) if stamps else (None, None)
        self.meta = ArtefactMeta(
            kind=kind,
            version=new_version(kind, digest),
            process_id=self.schema.process_id,
            schema_hash=self.schema.schema_hash(),
            train_from=first,
            train_to=last,
            train_cases=train_cases,
            train_examples=train_examples,
            metrics=metrics,
            params=self._params(),
        )
        model = servable_model(self.model, self.base, merge=self.config.merge_lora)
        save_artefact(model, self.tokenizer, out, self.meta, self.base)

    def _params(self) -> dict[str, Any]:
        config = self.config
        return {
            **self.start,
            "prompt_format": PROMPT_FORMAT,
            "max_model_len": config.max_model_len,
            "max_new_tokens": config.max_new_tokens,
            "max_prompt_tokens": config.max_prompt_tokens,
            "learning_rate": self.lr,
            "epochs": config.epochs,
            "batch_size": config.batch_size,
            "seed": config.seed,
        }


def prompt_builder_for(schema: ProcessSchema, tokenizer: PreTrainedTokenizerBase, config: SFTConfig) -> PromptBuilder:
    """Prompts for ``schema`` measured in ``tokenizer``'s tokens, within the config's prompt budget."""

    def count(text: str) -> int:
        return len(tokenizer(text)["input_ids"])

    return PromptBuilder(schema, count_tokens=count, max_prompt_tokens=config.max_prompt_tokens)
