"""Settings of the LLM fine-tuning (:mod:`selective_autonomy.inference.llm.sft`); pydantic only,
so the CLI reads them without importing torch."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from selective_autonomy.inference.llm.prompts import DEFAULT_MAX_NEW_TOKENS


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
    bucket_by_length: bool = Field(
        default=False,
        description="Cut batches from examples of similar length (less padding, a shorter answer window). Off: "
        "from scratch on 311 Helpdesk examples (60 steps) it cut the LLM policy's top-1 from 0.79 to 0.19, "
        "since within a case the prompt grows with the step, and so batches of one length hold one stage "
        "of the flow (selauto eval policy --log helpdesk --limit 100 --llm).",
    )
    threads: int | None = Field(
        default=None,
        ge=1,
        description="torch threads while training (restored after). None: 1 from scratch (the tiny model is "
        "overhead-bound, and OpenMP spinning on a busy 2-core machine slows it down up to 50x), torch's default "
        "with a base.",
    )
    max_model_len: int = Field(default=512, ge=64, description="Prompt plus answer tokens; the serving context.")
    max_new_tokens: int = Field(
        default=DEFAULT_MAX_NEW_TOKENS, ge=4, description="Room kept for the answer; prompts get the rest."
    )
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
    merge_lora: bool = Field(
        default=True,
        description="With a base: merge the adapter into the weights and save a plain model (one vLLM server "
        "per artefact), or False: save the adapter alone, served with the other adapters of the same base by "
        "one LoRA-enabled server (selauto llm serve-adapters) and loaded into it at run time.",
    )

    @property
    def max_prompt_tokens(self) -> int:
        return self.max_model_len - self.max_new_tokens
