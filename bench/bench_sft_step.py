"""Time one LoRA fine-tuning step on a pretrained base: the output layer at every position (as the
loop did) against only the positions that predict the answer, on the same examples, interleaved.

Usage: python -m bench.bench_sft_step --base artifacts/base/gemma-3-270m [--log sgd-dev] [--steps 6]

The examples are the LLM policy's (view -> next action) pairs of the log's first process, with the
prompt budget of ``--max-model-len``. Both variants run the same batches (cut by length, as the loop
now does, so only the output layer differs), alternating step by step, so load on the machine hits
both alike. Writes ``bench/results/sft_step.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from bench.bench_quality import processes_of
from selective_autonomy.inference.llm.sft import SFTConfig, policy_examples, prompt_builder_for
from selective_autonomy.inference.llm.sft_loop import (
    IGNORE_INDEX,
    collate,
    length_batches,
    target_logits,
    target_loss,
    tokenize,
)
from selective_autonomy.inference.llm.sft_models import start_model

RESULTS = Path(__file__).parent / "results"


def _full_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The loss as the loop computed it before: the model's own, logits at every position."""
    return model(**batch).loss


def _step(model: torch.nn.Module, batch: dict[str, torch.Tensor], loss_of: Any, optimiser: Any) -> float:
    started = time.perf_counter()
    loss = loss_of(model, batch)
    loss.backward()
    optimiser.step()
    optimiser.zero_grad(set_to_none=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--log", default="sgd-dev")
    parser.add_argument("--steps", type=int, default=6, help="Timed steps per variant (after one warm-up each).")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-model-len", type=int, default=320)
    parser.add_argument("--examples", type=int, default=400)
    parser.add_argument("--out", type=Path, default=RESULTS / "sft_step.json")
    args = parser.parse_args()

    schema, cases = processes_of(args.log, None, 1)[0]
    config = SFTConfig(batch_size=args.batch_size, max_model_len=args.max_model_len, max_new_tokens=64)
    started = time.perf_counter()
    model, tokenizer, lr, _ = start_model([], config, args.base)
    load_s = time.perf_counter() - started
    builder = prompt_builder_for(schema, tokenizer, config)
    examples = policy_examples(cases, builder)[: args.examples]
    data = tokenize(tokenizer, examples, config.max_model_len)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    batches = length_batches([len(d.input_ids) for d in data], args.batch_size, random.Random(0))
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    variants = {"every_position": _full_loss, "answer_window": target_loss}
    times: dict[str, list[float]] = {name: [] for name in variants}
    shapes: list[dict[str, int]] = []
    for i, indices in enumerate(batches[: args.steps + 1]):
        batch = collate([data[j] for j in indices], pad)
        logits, _ = target_logits(model, batch)
        shapes.append({"width": int(batch["input_ids"].shape[1]), "window": int(logits.shape[1]) + 1})
        del logits
        for name, loss_of in variants.items():
            seconds = _step(model, batch, loss_of, optimiser)
            if i > 0:  # the first step of each variant warms up allocators and kernels
                times[name].append(seconds)
    targets = [sum(1 for label in d.labels if label != IGNORE_INDEX) for d in data]
    result = {
        "benchmark": "sft_step",
        "command": f"python -m bench.bench_sft_step --base {args.base} --log {args.log} --steps {args.steps}",
        "machine": {"python": platform.python_version(), "cores": torch.get_num_threads()},
        "base": args.base.name,
        "vocab_size": len(tokenizer),
        "log": args.log,
        "process": schema.process_id,
        "batch_size": args.batch_size,
        "max_model_len": args.max_model_len,
        "examples": len(data),
        "tokens_per_example_median": statistics.median(len(d.input_ids) for d in data),
        "target_tokens_median": statistics.median(targets),
        "load_s": round(load_s, 1),
        "batches": shapes[1:],
        "step_s": {name: [round(t, 3) for t in values] for name, values in times.items()},
        "step_s_median": {name: round(statistics.median(values), 3) for name, values in times.items()},
    }
    medians = result["step_s_median"]
    result["speedup"] = round(medians["every_position"] / medians["answer_window"], 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("step_s_median", "speedup", "tokens_per_example_median")}))


if __name__ == "__main__":
    main()
