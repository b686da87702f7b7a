"""What folding operator feedback into the embedded policy costs and buys, on a real log.

Chronological 40/30/30 split of the log's cases: the embedded policy trains on the first 40%
(``EmbeddedPolicy.train``, default settings); every step of the middle 30% becomes an endorsed
example (the state the operator saw and the action they took, as accepts and corrections would
record it); :meth:`EmbeddedPolicy.updated_with` fine-tunes on them; top-1 on the last 30% is
reported before and after, with the update's wall time. For reference, the same run also trains a
policy from scratch on the first 70% (what a full retrain would give, and cost) and one on the
middle 30% alone (how much of the gain is recency: Helpdesk drifts), and ``--sweep`` repeats the
update over a grid of feedback set sizes (the chronologically first N endorsed steps), batch
sizes, learning rates and epoch budgets (how ``UpdateConfig``'s defaults were chosen). Everything
is seeded: top-1 is the same on every run, seconds vary with the load of the shared machine.

Usage: .venv/bin/python bench/bench_policy_update.py [--log helpdesk] [--sweep] [--no-retrain]
Writes bench/results/policy_update.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from bench.datasets import DATASETS_DIR
from selective_autonomy.inference.datasets import case_examples, load_log
from selective_autonomy.inference.embedded_policy import EmbeddedConfig, EmbeddedPolicy, UpdateConfig
from selective_autonomy.inference.evaluation import evaluate_policy
from selective_autonomy.inference.training import TrainConfig
from selective_autonomy.schemas.event_parts import Action
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.traces.format import Case
from selective_autonomy.traces.split import chronological_split

RESULTS = Path(__file__).parent / "results"
SWEEP_LEARNING_RATES = (3e-4, 1e-3, 3e-3)
SWEEP_EPOCHS = (3, 10)
SWEEP_BATCH_SIZES = (32, 64)
SWEEP_FEEDBACK = (100, 1000, None)
"""Feedback set sizes of the sweep: the chronologically first N endorsed steps (``None``: all)."""


@dataclass(frozen=True, slots=True)
class Endorsed:
    """An operator-endorsed step: what ``updated_with`` needs from a feedback example."""

    event: UIStateChanged
    action: Action


def endorsed_steps(cases: list[Case]) -> list[Endorsed]:
    return [Endorsed(case.state_event(i), step.action) for case in cases for i, step in enumerate(case.steps)]


def top1(policy: EmbeddedPolicy, cases: list[Case]) -> float:
    return round(evaluate_policy("embedded", policy, case_examples(cases)).top1, 4)


def timed_update(base: EmbeddedPolicy, examples: list[Endorsed], config: UpdateConfig) -> tuple[EmbeddedPolicy, float]:
    started = time.perf_counter()
    updated = base.updated_with(examples, config)
    return updated, round(time.perf_counter() - started, 2)


def update_row(
    base: EmbeddedPolicy, examples: list[Endorsed], test: list[Case], config: UpdateConfig
) -> dict[str, Any]:
    updated, seconds = timed_update(base, examples, config)
    assert updated.meta is not None
    params = updated.meta.params
    return {
        "config": config.model_dump(mode="json"),
        "top1_after": top1(updated, test),
        "seconds": seconds,
        "epochs": params.get("update_epochs"),
        "best_epoch": params.get("update_best_epoch"),
        "rejected_examples": params["rejected_examples"],
        "untemplated_examples": params["untemplated_examples"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", default="helpdesk")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sweep", action="store_true", help="also update over the settings grid")
    parser.add_argument("--no-retrain", action="store_true", help="skip the from-scratch references")
    parser.add_argument("--out", type=Path, default=RESULTS / "policy_update.json")
    args = parser.parse_args()
    started = time.monotonic()

    (process,) = load_log(args.log, data_dir=DATASETS_DIR)
    past, present, future = chronological_split(process.cases, (0.4, 0.3, 0.3))
    config = EmbeddedConfig(train=TrainConfig(seed=args.seed, progress=False))
    train_started = time.perf_counter()
    base = EmbeddedPolicy.train(process.schema, past, config)
    train_seconds = round(time.perf_counter() - train_started, 2)
    base.meta = base.train_meta(past)
    feedback = endorsed_steps(present)
    before = top1(base, future)
    print(f"{args.log}: {len(past)}/{len(present)}/{len(future)} cases; base top-1 {before:.4f} ({train_seconds} s)")

    defaults = UpdateConfig(seed=args.seed)
    row = update_row(base, feedback, future, defaults)
    print(f"update (defaults): top-1 {row['top1_after']:.4f} in {row['seconds']} s, {row['epochs']} epochs")

    result: dict[str, Any] = {
        "benchmark": "policy_update",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "platform": platform.platform(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "settings": {
            "log": args.log,
            "seed": args.seed,
            "split": "chronological 40/30/30: base training / endorsed feedback (every step, the operator's action) "
            "/ test",
            "cases": [len(past), len(present), len(future)],
            "feedback_examples": len(feedback),
            "test_examples": sum(len(c.steps) for c in future),
            "base_config": config.model_dump(mode="json"),
        },
        "base": {"top1": before, "train_seconds": train_seconds, "epochs": base.report.epochs if base.report else None},
        "update": {"top1_before": before, **row},
    }
    if not args.no_retrain:
        retrain_started = time.perf_counter()
        retrained = EmbeddedPolicy.train(process.schema, past + present, config)
        result["retrain_on_70_percent"] = {
            "top1": top1(retrained, future),
            "seconds": round(time.perf_counter() - retrain_started, 2),
        }
        print(f"retrain on 70%: {result['retrain_on_70_percent']}")
        # How much of the update's gain is recency alone: a policy that never saw the first 40%.
        recent_started = time.perf_counter()
        recent = EmbeddedPolicy.train(process.schema, present, config)
        result["train_on_middle_30_percent"] = {
            "top1": top1(recent, future),
            "seconds": round(time.perf_counter() - recent_started, 2),
        }
        print(f"train on the middle 30%: {result['train_on_middle_30_percent']}")
    if args.sweep:
        result["sweep"] = []
        grid = itertools.product(SWEEP_FEEDBACK, SWEEP_BATCH_SIZES, SWEEP_LEARNING_RATES, SWEEP_EPOCHS)
        for size, batch_size, learning_rate, max_epochs in grid:
            settings = UpdateConfig(
                seed=args.seed, learning_rate=learning_rate, max_epochs=max_epochs, batch_size=batch_size
            )
            point = {"feedback_examples": size or len(feedback), **update_row(base, feedback[:size], future, settings)}
            result["sweep"].append(point)
            print(
                f"feedback {point['feedback_examples']} batch {batch_size} lr {learning_rate:g} epochs {max_epochs}: "
                f"top-1 {point['top1_after']:.4f} in {point['seconds']} s ({point['epochs']} epochs)",
                flush=True,
            )
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["wall_s"] = round(time.monotonic() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
