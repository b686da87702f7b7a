"""What the LLM's prompt budget costs in what the model can see: SGD dev states rendered as the LLM
policy's prompts under each prompt budget and chat-turn limit, counted in the base's own tokens.

Usage: python -m bench.bench_view_budget --tokenizer artifacts/base/gemma-3-270m-hf [--states 2000]

A policy that writes an argument (a city, a date, a restaurant's name) can copy it only if the value
is on the screen it reads. For every sampled state whose next action has free-text arguments (not an
enum of the schema), this checks whether each value appears in the prompt (case-insensitive) as the
harness would build it: :class:`PromptBuilder` fitting the view to ``max_model_len`` minus the
answer's room, starting from a :class:`ViewBudget` with the given ``max_chat_turns``. It does not
train or serve a model: it measures the ceiling a prompt budget puts on argument accuracy, the
prompt lengths a training step pays for, and how many of those values only the dialogue carries (the
screen's fields hold the dialogue state as said, not as the action writes it).

The states are the test part (last 20% of dialogues in time) of every SGD dev service, evenly
sampled; nothing is random. Writes ``bench/results/view_budget_sgd-dev.json`` and ``.png``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.datasets import DATASETS_DIR
from selective_autonomy.inference.datasets import load_log
from selective_autonomy.inference.llm.prompts import DEFAULT_MAX_NEW_TOKENS, PromptBuilder, TokenCount, TokenCounter
from selective_autonomy.schemas.event_parts import Action
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.schemas.process import ProcessSchema, ValueType
from selective_autonomy.schemas.view import ViewBudget
from selective_autonomy.traces.split import chronological_split

RESULTS = Path(__file__).parent / "results"

ANSWER_TOKENS = DEFAULT_MAX_NEW_TOKENS
"""Room the harness keeps for the action's JSON (``LLMHarnessConfig.max_new_tokens``'s default)."""


@dataclass(frozen=True)
class SampledState:
    schema: ProcessSchema
    event: UIStateChanged
    values: tuple[str, ...]
    """The next action's free-text argument values (lower case)."""


def free_text_values(action: Action, schema: ProcessSchema) -> tuple[str, ...]:
    """Argument values a policy must write out rather than choose from the schema's enums."""
    spec = schema.action(action.action_type)
    enums = {a.name for a in spec.arguments if a.type is ValueType.enum or a.enum} if spec is not None else set()
    return tuple(
        value.strip().lower()
        for name, value in sorted(action.arguments.items())
        if name not in enums and isinstance(value, str) and value.strip()
    )


def sample_states(data_dir: Path | None, states: int) -> list[SampledState]:
    """Evenly spaced states of the test part of every service, in service then time order."""
    pool: list[SampledState] = []
    for process in load_log("sgd-dev", data_dir=data_dir):
        _, _, test = chronological_split(process.cases, (0.6, 0.2, 0.2))
        for case in test:
            for i, step in enumerate(case.steps):
                values = free_text_values(step.action, process.schema)
                pool.append(SampledState(process.schema, case.state_event(i), values))
    # Evenly spaced over the whole pool (a whole-number stride cut short would drop the last services).
    n = min(states, len(pool))
    return [pool[i * len(pool) // n] for i in range(n)]


def _chat_turns(prompt: str) -> int:
    return prompt.count('"speaker":')


def measure(sample: list[SampledState], count: TokenCounter, max_prompt_tokens: int, chat_turns: int) -> dict[str, Any]:
    """One row: the sample's prompts fitted to ``max_prompt_tokens`` from a view of at most ``chat_turns``."""
    builders: dict[str, PromptBuilder] = {}
    tokens: list[int] = []
    turns: list[int] = []
    values = visible = states_with_values = states_all_visible = not_fitted = 0
    for state in sample:
        builder = builders.setdefault(
            state.schema.process_id,
            PromptBuilder(
                state.schema,
                count_tokens=count,
                max_prompt_tokens=max_prompt_tokens,
                budget=ViewBudget(max_tokens=max_prompt_tokens, max_chat_turns=chat_turns),
            ),
        )
        prompt = builder.policy(state.event)
        if prompt is None:
            not_fitted += 1
            prompt = ""
        else:
            tokens.append(count(prompt))
            turns.append(_chat_turns(prompt))
        if state.values:
            seen = [value in prompt.lower() for value in state.values]
            values += len(seen)
            visible += sum(seen)
            states_with_values += 1
            states_all_visible += all(seen)
    return {
        "max_prompt_tokens": max_prompt_tokens,
        "max_model_len": max_prompt_tokens + ANSWER_TOKENS,
        "max_chat_turns": chat_turns,
        "prompt_tokens_median": statistics.median(tokens) if tokens else 0,
        "prompt_tokens_p95": sorted(tokens)[int(0.95 * (len(tokens) - 1))] if tokens else 0,
        "chat_turns_shown_mean": round(statistics.fmean(turns), 2) if turns else 0.0,
        "not_fitted": not_fitted,
        "argument_values": values,
        "argument_values_visible": round(visible / max(values, 1), 4),
        "states_with_arguments": states_with_values,
        "states_all_arguments_visible": round(states_all_visible / max(states_with_values, 1), 4),
    }


def plot(rows: list[dict[str, Any]], out: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for turns in sorted({r["max_chat_turns"] for r in rows}):
        line = sorted((r for r in rows if r["max_chat_turns"] == turns), key=lambda r: r["max_prompt_tokens"])
        ax.plot(
            [r["prompt_tokens_median"] for r in line],
            [r["argument_values_visible"] for r in line],
            marker="o",
            label=f"chat turns <= {turns}",
        )
    ax.set_xlabel("median prompt tokens (the base's tokenizer)")
    ax.set_ylabel("next action's free-text argument values in the prompt")
    ax.set_title("SGD dev: what the prompt budget lets a policy copy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokenizer", type=Path, required=True, help="Directory with the base's tokenizer.json.")
    parser.add_argument("--data-dir", type=Path, default=DATASETS_DIR)
    parser.add_argument("--states", type=int, default=2000)
    parser.add_argument("--prompt-tokens", type=int, nargs="+", default=[160, 224, 416, 928, 1904])
    parser.add_argument("--chat-turns", type=int, nargs="+", default=[0, 2, 6, 10])
    parser.add_argument("--out", type=Path, default=RESULTS / "view_budget_sgd-dev.json")
    args = parser.parse_args()

    count = TokenCount(args.tokenizer)
    sample = sample_states(args.data_dir, args.states)
    rows = [measure(sample, count, p, c) for c in args.chat_turns for p in args.prompt_tokens]
    result = {
        "benchmark": "view_budget",
        "command": "python -m bench.bench_view_budget --tokenizer "
        f"{args.tokenizer} --states {args.states} --prompt-tokens {' '.join(map(str, args.prompt_tokens))} "
        f"--chat-turns {' '.join(map(str, args.chat_turns))}",
        "machine": {"python": platform.python_version()},
        "tokenizer": args.tokenizer.name,
        "log": "sgd-dev",
        "states": len(sample),
        "processes": len({s.schema.process_id for s in sample}),
        "answer_tokens": ANSWER_TOKENS,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    plot(rows, args.out.with_suffix(".png"))
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
