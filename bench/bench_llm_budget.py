"""The LoRA-tuned pretrained base against the embedded policy and the n-gram, as training goes on: the
curve of top-1 against training examples seen, on one SGD service, within a stated CPU budget.

Usage: python -m bench.bench_llm_budget --base artifacts/base/gemma-3-270m
       [--log sgd-dev] [--process sgd.Flights_3] [--train-minutes 50] [--checkpoints 25 50 100 200]
       [--test-states 160] [--out bench/results/llm_budget_sgd-dev.json]

One process, the chronological (0.6, 0.2, 0.2) split of ``selauto eval policy``. The n-gram and the
embedded policy are trained on the train part as there. One policy adapter (LoRA r 8 on q/v, batch 4,
``merge_lora=False``) is trained on the same train part for ``--train-minutes`` of wall time, and the
adapter is saved as it is after each of ``--checkpoints`` optimiser steps (the learning-rate schedule is
that of one run over one epoch, so a checkpoint is not what a shorter run would have ended with). Then
ONE vLLM server holds the base with every checkpoint as an adapter, and each is scored the way the
harness scores the LLM policy (``samples`` choices per state under the action grammar, the distinct ones
ranked by sequence probability) on the same evenly spaced ``--test-states`` states of the test part; the
n-gram and the embedded policy are scored on those states and on the whole test part (to show how far
the sample is from it). The JSON is rewritten after each checkpoint's score, so a stopped run keeps what
it measured. Writes JSON and a PNG beside it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bench_quality import processes_of
from selective_autonomy.inference.artefact import read_meta
from selective_autonomy.inference.datasets import (
    DEFAULT_FRACTIONS,
    Examples,
    ProcessCases,
    case_examples,
    split_processes,
)
from selective_autonomy.inference.evaluation import PolicyReport, evaluate_policy
from selective_autonomy.inference.llm.policy import LLMPolicy
from selective_autonomy.inference.llm.server import LoRAServing, ServerConfig, VLLMServer
from selective_autonomy.inference.llm.settings import LLMClientSettings
from selective_autonomy.inference.llm.sft import SFTConfig, train_policy
from selective_autonomy.inference.llm.sft_models import export_base
from selective_autonomy.inference.protocol import Policy

RESULTS = Path(__file__).parent / "results"
CPUS = "0-1"


def _sample(examples: Examples, n: int) -> Examples:
    """``n`` states evenly spaced over the test part (cases in time order, steps in order)."""
    if n >= len(examples):
        return examples
    picks = [round(i * (len(examples) - 1) / (n - 1)) for i in range(n)]
    return Examples(events=[examples.events[i] for i in picks], targets=[examples.targets[i] for i in picks])


def _scores(report: PolicyReport) -> dict[str, Any]:
    return {
        "version": report.version,
        "n": report.n,
        "top1": round(report.top1, 4),
        "top3": round(report.top3, 4),
        "type_top1": round(report.type_top1, 4),
        "selective_area": round(report.selective_area, 4),
    }


def _trend_crossing(points: list[dict[str, Any]], target: float) -> dict[str, Any] | None:
    """Least squares of top-1 on log(examples seen) over the checkpoints, and where it reaches ``target``.

    A trend, not a promise: it says at what budget the curve would cross if it kept its measured slope.
    """
    xs = [math.log(p["examples_seen"]) for p in points if p["examples_seen"] > 0]
    ys = [p["sample"]["top1"] for p in points if p["examples_seen"] > 0]
    if len(xs) < 3:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
    out: dict[str, Any] = {
        "fit": "top1 = a + b * ln(examples seen)",
        "a": round(my - slope * mx, 4),
        "b": round(slope, 4),
    }
    if slope > 0:
        out["examples_to_reach_embedded"] = round(math.exp(mx + (target - my) / slope))
    return out


def _plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = report["llm"]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    xs = [p["examples_seen"] for p in points]
    ax.plot(xs, [p["sample"]["top1"] for p in points], "o-", label="LoRA-tuned base, top-1")
    ax.plot(xs, [p["sample"]["top3"] for p in points], "o--", label="LoRA-tuned base, top-3")
    colours = {"embedded": "tab:green", "ngram": "tab:grey"}
    for name, colour in colours.items():
        ax.axhline(report["baselines"][name]["sample"]["top1"], color=colour, label=f"{name}, top-1")
        ax.axhline(report["baselines"][name]["sample"]["top3"], color=colour, linestyle=":", label=f"{name}, top-3")
    ax.set_xscale("log")
    ax.set_xlabel("training examples seen (batch 4)")
    ax.set_ylabel(f"accuracy on {report['test_sample_states']} test states")
    ax.set_title(
        f"{report['process']}: {report['base']} + LoRA, {report['train_minutes']} min on {report['cpus']} CPUs"
    )
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _write(report: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    if report["llm"]:
        _plot(report, out.with_suffix(".png"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", type=Path, required=True, help="Base model directory (HF checkpoint or GGUF).")
    parser.add_argument("--log", default="sgd-dev")
    parser.add_argument("--process", default=None, help="Process id; default the log's largest.")
    parser.add_argument("--train-minutes", type=float, default=50.0, help="Wall-time budget of the adapter.")
    parser.add_argument("--checkpoints", nargs="+", type=int, default=[25, 50, 100, 200], help="Optimiser steps.")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--test-states", type=int, default=160)
    parser.add_argument("--samples", type=int, default=8, help="Choices sampled per state (as the harness).")
    parser.add_argument("--max-model-len", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None, help="Scratch directory; default temp.")
    parser.add_argument(
        "--reuse", action="store_true", help="Score the adapters a previous run left in --work (no training)."
    )
    parser.add_argument(
        "--score", nargs="+", default=None, help="Checkpoint directories to score (e.g. final step-00050); default all."
    )
    parser.add_argument(
        "--served-base",
        type=Path,
        default=None,
        help="The base as vLLM loads it (selauto llm export-base); default exported.",
    )
    parser.add_argument("--out", type=Path, default=None, help="Default bench/results/llm_budget_<log>.json.")
    args = parser.parse_args()
    out: Path = args.out or RESULTS / f"llm_budget_{args.log}.json"
    work = args.work or Path(tempfile.mkdtemp(prefix="selauto-llm-budget-"))
    started = time.monotonic()

    from selective_autonomy.inference.embedded_policy import EmbeddedConfig, EmbeddedPolicy
    from selective_autonomy.inference.ngram import NGramPolicy
    from selective_autonomy.inference.training import TrainConfig

    loaded = processes_of(args.log, None, 100)
    chosen = [p for p in loaded if args.process in (None, p[0].process_id)][:1]
    if not chosen:
        raise SystemExit(f"no process {args.process!r} in {args.log}")
    schema, cases = chosen[0]
    (split,) = split_processes([ProcessCases(schema=schema, cases=cases)], DEFAULT_FRACTIONS)
    test = case_examples(split.test)
    sample = _sample(test, args.test_states)
    report: dict[str, Any] = {
        "benchmark": "llm_budget",
        "command": f"python -m bench.bench_llm_budget --base {args.base} --log {args.log} --process "
        f"{schema.process_id} --train-minutes {args.train_minutes:g} --checkpoints "
        + " ".join(str(c) for c in args.checkpoints)
        + f" --test-states {args.test_states}"
        + (" --reuse" if args.reuse else "")
        + (" --score " + " ".join(args.score) if args.score else ""),
        "machine": {"platform": platform.platform()},
        "cpus": os.cpu_count(),
        "base": args.base.name,
        "log": args.log,
        "process": schema.process_id,
        "fractions": list(DEFAULT_FRACTIONS),
        "train_cases": len(split.train),
        "train_examples": len(case_examples(split.train)),
        "test_cases": len(split.test),
        "test_states": len(test),
        "test_sample_states": len(sample),
        "train_minutes": args.train_minutes,
        "samples_per_state": args.samples,
        "max_model_len": args.max_model_len,
        "baselines": {},
        "llm": [],
    }
    baselines: dict[str, Policy] = {
        "ngram": NGramPolicy(schema).fit(split.train),
        "embedded": EmbeddedPolicy.train(schema, split.train, EmbeddedConfig(train=TrainConfig(seed=args.seed))),
    }
    for name, policy in baselines.items():
        report["baselines"][name] = {
            "sample": _scores(evaluate_policy(name, policy, sample)),
            "test": _scores(evaluate_policy(name, policy, test)),
        }
    print(json.dumps(report["baselines"], indent=1), flush=True)

    config = SFTConfig(
        epochs=1,
        batch_size=args.batch_size,
        max_seconds=args.train_minutes * 60,
        max_model_len=args.max_model_len,
        max_new_tokens=96,
        merge_lora=False,
        val_fraction=0.0,  # the score below is the held-out measure; a loss on SGD costs minutes
        seed=args.seed,
    )
    adapters = work / "adapters"
    checkpoints = {step: adapters / f"step-{step:05d}" for step in args.checkpoints}
    training = time.monotonic()
    if args.reuse and (adapters / "final" / "artefact.json").is_file():
        final = read_meta(adapters / "final")  # a scoring rerun: the training time is the first run's
        report["train_s"] = final.metrics["train_seconds"]
    else:
        final = train_policy(split.train, schema, adapters / "final", config, base=args.base, checkpoints=checkpoints)
        report["train_s"] = round(time.monotonic() - training, 1)
    report["adapter"] = {
        "lora": final.params["lora"],
        "learning_rate": final.params["learning_rate"],
        "batch": args.batch_size,
    }
    report["final_metrics"] = final.metrics
    print(f"trained {final.metrics['train_steps']:.0f} steps in {report['train_s']} s", flush=True)

    saved = sorted((d for d in adapters.iterdir() if (d / "artefact.json").is_file()), key=lambda d: d.name)
    if args.score:
        saved = [d for d in saved if d.name in args.score]
    servable = args.served_base or (args.base if (args.base / "config.json").is_file() else work / "base-hf")
    if not (servable / "config.json").is_file():
        export_base(args.base, servable)
    metas = {d: read_meta(d) for d in saved}
    lora = LoRAServing(
        adapters={meta.version: d for d, meta in metas.items()},
        max_loras=1,  # scored one after another: one slot keeps the server's LoRA buffers small
        max_cpu_loras=len(saved) + 1,
    )
    server = VLLMServer(
        ServerConfig(
            model_dir=servable,
            served_model_name="base",
            max_model_len=args.max_model_len,
            kv_cache_gib=2,
            max_num_seqs=64,
            cpu_bind=CPUS,
            enforce_eager=True,
            lora=lora,
            work_dir=work / "server",
            startup_timeout_s=900,
        )
    )
    with server:
        report["server_start_s"] = round(server.startup_seconds or 0.0, 1)
        settings = LLMClientSettings(url=server.url, timeout_s=1800.0, max_retries=0)
        # The longest-trained first: a run stopped for time keeps the point that matters most.
        for directory in sorted(saved, key=lambda d: -metas[d].metrics["train_steps"]):
            policy = LLMPolicy.load(directory, schema, settings)
            policy.samples = args.samples
            scoring = time.monotonic()
            scores = _scores(evaluate_policy("llm", policy, sample, batch_size=32))
            metrics = metas[directory].metrics
            steps = int(metrics["train_steps"])
            point = {
                "checkpoint": directory.name,
                "steps": steps,
                # The final artefact's metrics count the train part, not what was seen: full batches until then.
                "examples_seen": int(metrics.get("train_examples_seen", steps * args.batch_size)),
                "train_s": metrics["train_seconds"],
                "sample": scores,
                "score_s": round(time.monotonic() - scoring, 1),
            }
            report["llm"].append(point)
            report["llm"].sort(key=lambda p: p["steps"])
            report["trend"] = _trend_crossing(report["llm"], report["baselines"]["embedded"]["sample"]["top1"])
            report["wall_s"] = round(time.monotonic() - started, 1)
            _write(report, out)
            print(json.dumps(point), flush=True)
    report["wall_s"] = round(time.monotonic() - started, 1)
    _write(report, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
