"""The one fine-tuning loop of the LLM policy and critic: prompts masked, the loss on the target only.

The output layer runs only where a target token is predicted (:func:`target_logits`). A pretrained
base's vocabulary is large (Gemma 3: 262,144 tokens), so on prompts of a few hundred tokens the
projection onto it dominates a step when it runs at every position, although the loss reads only
the last few dozen (measured in ``bench/results/sft_step.json``). Batches of similar length
(:func:`length_batches`) shorten padding and the window further, but are off unless
``SFTConfig.bucket_by_length`` asks for them (see there: they cost the small model its accuracy).
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from tqdm import tqdm
from transformers import PreTrainedTokenizerBase

from selective_autonomy.inference.artefact import ArtefactError
from selective_autonomy.inference.llm.sft_config import SFTConfig
from selective_autonomy.inference.llm.sft_data import TextExample

log = logging.getLogger(__name__)

IGNORE_INDEX = -100

StepHook = Callable[[int, int], None]
"""Called after each optimiser step with (steps done, training examples seen so far)."""


@dataclass(frozen=True)
class Tokenized:
    input_ids: list[int]
    labels: list[int]


def tokenize(tokenizer: PreTrainedTokenizerBase, examples: Sequence[TextExample], max_len: int) -> list[Tokenized]:
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ArtefactError("the tokenizer has no EOS token")
    out = []
    for example in examples:
        prompt = list(tokenizer(example.prompt)["input_ids"])
        target = [*tokenizer(example.target, add_special_tokens=False)["input_ids"], eos]
        ids = (prompt + target)[:max_len]
        labels = ([IGNORE_INDEX] * len(prompt) + target)[:max_len]
        out.append(Tokenized(ids, labels))
    return out


def collate(batch: Sequence[Tokenized], pad_id: int) -> dict[str, torch.Tensor]:
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


def target_logits(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The logits of the positions that predict a target token, and the labels they predict.

    Position ``t`` predicts token ``t + 1``, so the window starts one before the earliest target in
    the batch and runs to the end; the model is asked for those positions only (``logits_to_keep``,
    which Hugging Face causal LMs take), so its output layer skips every earlier prompt position.
    """
    labels = batch["labels"]
    targets = labels != IGNORE_INDEX
    width = labels.shape[1]
    has_target = targets.any(dim=1)
    first = int(targets.int().argmax(dim=1)[has_target].min()) if bool(has_target.any()) else width - 1
    keep = width - max(first - 1, 0)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=keep).logits[
        :, :-1
    ]
    return logits, labels[:, width - keep + 1 :]


def target_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean cross-entropy over the batch's target tokens (what the model's own ``labels`` loss is)."""
    logits, labels = target_logits(model, batch)
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=IGNORE_INDEX
    )


def _batches(lengths: Sequence[int], config: SFTConfig, rng: random.Random) -> list[list[int]]:
    if config.bucket_by_length:
        return length_batches(lengths, config.batch_size, rng)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    return [order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)]


def length_batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Indices in batches of similar length, in random order: examples are shuffled, sorted by length
    within runs of 50 batches (so which examples share a batch still varies), cut into batches, and
    the batches shuffled."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    run = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(order), run):
        chunk = sorted(order[start : start + run], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


@torch.no_grad()
def _evaluate(model: torch.nn.Module, data: Sequence[Tokenized], pad_id: int, batch_size: int) -> dict[str, float]:
    """Mean target loss and exact match: every target token is the argmax, i.e. greedy decoding
    (unconstrained) would produce the target exactly."""
    if not data:
        return {}
    model.eval()
    total_loss, total_tokens, exact = 0.0, 0, 0
    for start in range(0, len(data), batch_size):
        batch = collate(data[start : start + batch_size], pad_id)
        logits, labels = target_logits(model, batch)
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
    on_step: StepHook | None = None,
) -> dict[str, float]:
    """Train ``model`` in place on ``examples`` (the last ``val_fraction`` held out); return metrics.

    :param on_step: called after every optimiser step (e.g. to save checkpoints); default None.
    """
    if not examples:
        raise ArtefactError("no training examples (empty data, or no view fits max_model_len)")
    previous_threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        return _fit(model, tokenizer, examples, config, learning_rate, on_step)
    finally:
        torch.set_num_threads(previous_threads)


def _fit(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[TextExample],
    config: SFTConfig,
    learning_rate: float,
    on_step: StepHook | None,
) -> dict[str, float]:
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        raise ArtefactError("the tokenizer has neither a pad nor an EOS token")
    data = tokenize(tokenizer, examples, config.max_model_len)
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
    step, seen, recent = 0, 0, list[float]()
    bar = tqdm(total=total, desc="fine-tune", unit="step", leave=False)
    while step < total:
        for indices in _batches([len(item.input_ids) for item in train], config, rng):
            batch = collate([train[i] for i in indices], pad_id)
            loss = target_loss(model, batch)
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            optimiser.step()
            scheduler.step()
            optimiser.zero_grad(set_to_none=True)
            recent = [*recent[-19:], loss.item()]
            step += 1
            seen += len(indices)
            if on_step is not None:
                on_step(step, seen)
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
