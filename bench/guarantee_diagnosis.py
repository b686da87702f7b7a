"""Why realised precision fell short of the certified target: one experiment per candidate cause.

Each experiment isolates one cause on the real logs (embedded policy, target 0.9 at confidence 0.9,
chronological 40/30/30 split: policy / copilot feedback / future) with the production critic fit
and Learn-Then-Test certification. "Pooled" is the certificate the loop issued before: one
threshold per (cluster, tier); "per action" is one per (cluster, tier, action type).

1. ``replay``: one pooled certificate judged two ways on the future: the replay that kept the
   wrong action in the history while the screens followed the record, and the honest one (the
   operator undoes a wrong step; every step is judged on its recorded state).
2. ``open_cases``: cases cut off by the end of the log used to get an invented close_chat; how many
   future steps that made, and the last fifth's precision with and without them.
3. ``drift``: the pipeline on an exchangeable split (cases shuffled, 5 seeds) against the
   chronological one, precision on each fifth of the future, pooled against per action, and the
   acceptance rate of the policy on the calibration window against the future.
4. ``selection``: the critic fit repeated with 8 seeds on the same feedback: how much the pooled
   certificate moves with the seed, and what keeping the better of two by the coverage certified
   on the certifying set itself does.
5. ``biased_feedback``: after promotion, the future in four chunks; after each, recertification on
   the copilot feedback plus the deferred steps only (what the loop saw: audits had no state) and
   on the copilot feedback plus every step of a 5% exploration holdout; the next chunk measures each.

Usage: python bench/guarantee_diagnosis.py [--logs helpdesk bpi2012w]
Writes bench/results/guarantee_diagnosis.json; docs/guarantee.md summarises it.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.datasets import DATASETS_DIR
from selective_autonomy.config import LearningSettings
from selective_autonomy.inference.critic import CriticConfig
from selective_autonomy.inference.datasets import load_log
from selective_autonomy.inference.embedded_policy import EmbeddedPolicy
from selective_autonomy.inference.protocol import Critic, CriticInput, Policy, PolicyConfidenceCritic, PolicySignals
from selective_autonomy.inference.registry import ProcessModels, ServicePointer
from selective_autonomy.inference.thresholds import Thresholds
from selective_autonomy.learning.calibration import certify_threshold
from selective_autonomy.learning.critic_choice import fit_critic
from selective_autonomy.learning.evidence import CriticExample, critic_examples
from selective_autonomy.learning.splits import split_evidence
from selective_autonomy.schemas.event_parts import ActionTier, Stage
from selective_autonomy.schemas.process import ProcessSchema
from selective_autonomy.schemas.sampling import in_exploration_holdout
from selective_autonomy.simulator.offline import offline_copilot, offline_replay, with_context
from selective_autonomy.simulator.operator_model import HandlingTimeModel
from selective_autonomy.traces.format import Case
from selective_autonomy.traces.split import chronological_order, chronological_split

RESULTS = Path(__file__).parent / "results"
LEARNING = LearningSettings()


def copilot_examples(schema: ProcessSchema, policy: Policy, cases: Sequence[Case]) -> list[CriticExample]:
    models = ProcessModels(schema, policy, PolicyConfidenceCritic(), ServicePointer(policy="in-memory"))
    return critic_examples(with_context(list(offline_copilot(models, cases))))


def key(item: CriticInput, pooled: bool) -> str:
    base = f"{item.event.process_id}/{item.event.business_cluster}/{item.tier.value}"
    return base if pooled else f"{base}/{item.action.action_type}"


def certify_keys(critic: Critic, examples: Sequence[CriticExample], pooled: bool) -> dict[str, float]:
    """Learn-Then-Test per key (at least 100 calibration steps), as the loop does."""
    inputs = [e.critic_input() for e in examples]
    scores = np.asarray(critic.score(inputs)) if inputs else np.zeros(0)
    labels = np.asarray([e.label for e in examples], dtype=bool)
    groups: dict[str, list[int]] = {}
    for i, item in enumerate(inputs):
        if item.tier is not ActionTier.approval_required:
            groups.setdefault(key(item, pooled), []).append(i)
    out = {}
    for name, index in groups.items():
        if len(index) >= LEARNING.min_calibration_samples:
            threshold = certify_threshold(
                scores[index].tolist(), labels[index].tolist(), LEARNING.target_precision, LEARNING.confidence
            )
            if threshold is not None:
                out[name] = threshold
    return out


def future_steps(schema: ProcessSchema, policy: Policy, cases: Sequence[Case]) -> tuple[list[CriticInput], np.ndarray]:
    """Every step on its recorded state: the critic input of the policy's top-1 and whether it was right."""
    inputs, correct = [], []
    events = [case.state_event(i) for case in cases for i in range(len(case.steps))]
    recorded = [step.action for case in cases for step in case.steps]
    for start in range(0, len(events), 1024):
        chunk = events[start : start + 1024]
        for event, proposal, action in zip(chunk, policy.propose(chunk), recorded[start : start + 1024], strict=True):
            top = proposal.top
            if top is None:
                continue
            spec = schema.action(top.action.action_type)
            tier = spec.tier if spec else ActionTier.critical
            inputs.append(CriticInput(event=event, action=top.action, tier=tier, signals=PolicySignals.of(proposal, 0)))
            correct.append(top.action == action)
    return inputs, np.asarray(correct, dtype=bool)


def executed(critic: Critic, thresholds: dict[str, float], inputs: list[CriticInput], pooled: bool) -> np.ndarray:
    scores = np.asarray(critic.score(inputs)) if inputs else np.zeros(0)
    limits = np.asarray([thresholds.get(key(i, pooled), np.inf) for i in inputs], dtype=float)
    return scores >= limits


def judged(mask: np.ndarray, correct: np.ndarray) -> dict[str, Any]:
    n = int(mask.sum())
    return {
        "steps": len(mask),
        "executed": n,
        "coverage": n / len(mask) if len(mask) else 0.0,
        "precision": float(correct[mask].mean()) if n else None,
    }


def by_fifth(mask: np.ndarray, correct: np.ndarray) -> list[float | None]:
    return [judged(m, c)["precision"] for m, c in zip(np.array_split(mask, 5), np.array_split(correct, 5), strict=True)]


def critic_for(
    schema: ProcessSchema, examples: Sequence[CriticExample], seed: int = 7
) -> tuple[Critic, list[CriticExample]]:
    """The loop's fit: train on the oldest, early-stop and Platt-scale on the next; the newest certify."""
    splits = split_evidence(examples, LEARNING)
    return fit_critic(schema, splits.train, splits.select, replace(CriticConfig(), seed=seed)), splits.certify


def run_split(schema: ProcessSchema, ordered: list[Case]) -> dict[str, Any]:
    n = len(ordered)
    train, copilot, future = ordered[: int(0.4 * n)], ordered[int(0.4 * n) : int(0.7 * n)], ordered[int(0.7 * n) :]
    policy = EmbeddedPolicy.train(schema, train)
    examples = copilot_examples(schema, policy, copilot)
    critic, certify = critic_for(schema, examples)
    inputs, correct = future_steps(schema, policy, future)
    out: dict[str, Any] = {
        "acceptance_calibration": float(np.mean([e.label for e in certify])),
        "acceptance_future": float(correct.mean()),
    }
    for pooled in (True, False):
        mask = executed(critic, certify_keys(critic, certify, pooled), inputs, pooled)
        out["pooled" if pooled else "per_action"] = {
            "future": judged(mask, correct),
            "by_fifth": by_fifth(mask, correct),
        }
    return out


def experiment_drift(schema: ProcessSchema, cases: list[Case], seeds: int = 5) -> dict[str, Any]:
    ordered = chronological_order(cases)
    shuffled = []
    for seed in range(seeds):
        mixed = list(ordered)
        random.Random(seed).shuffle(mixed)
        shuffled.append(run_split(schema, mixed))
    return {"chronological": run_split(schema, ordered), "exchangeable": shuffled}


def experiment_replay(
    schema: ProcessSchema,
    policy: Policy,
    critic: Critic,
    certify: list[CriticExample],
    train: list[Case],
    future: list[Case],
) -> dict[str, Any]:
    thresholds = Thresholds(values=certify_keys(critic, certify, pooled=True), version="diagnosis")
    pointer = ServicePointer(policy="in-memory", thresholds=thresholds, default_stage=Stage.selective)
    models = ProcessModels(schema, policy, critic, pointer)
    handling = HandlingTimeModel.from_cases(train)
    out = {}
    for mode in ("follow_record", "back_on_record"):
        report = offline_replay(models, future, handling=handling, after_wrong_step=mode)  # type: ignore[arg-type]
        out[mode] = {"executed": report.steps_executed, "coverage": report.coverage, "precision": report.precision}
    return out


def experiment_open_cases(
    schema: ProcessSchema, policy: Policy, critic: Critic, certify: list[CriticExample], future: list[Case]
) -> dict[str, Any]:
    """The same certificate on the last fifth of the future, with and without invented closes."""
    thresholds = certify_keys(critic, certify, pooled=True)
    last = future[4 * len(future) // 5 :]
    open_cases = [c for c in future if not c.ended]
    with_close = [c if c.ended else c.model_copy(update={"steps": [*c.steps, _invented_close(c)]}) for c in last]
    out: dict[str, Any] = {
        "future_cases": len(future),
        "open_at_end": len(open_cases),
        "open_in_last_fifth": sum(not c.ended for c in last),
    }
    for name, cases in (("invented_close", with_close), ("as_recorded", last)):
        inputs, correct = future_steps(schema, policy, cases)
        out[name] = judged(executed(critic, thresholds, inputs, True), correct)
    return out


def _invented_close(case: Case) -> Any:
    from selective_autonomy.schemas.event_parts import Action, UIState
    from selective_autonomy.traces.format import TraceStep

    last = case.steps[-1]
    history = [*last.state.recent_actions, last.action][-20:]
    state = UIState(fields=last.state.fields, recent_actions=history, case_started_at=last.state.case_started_at)
    return TraceStep(state=state, action=Action(action_type="close_chat"), timestamp=last.timestamp)


def experiment_selection(
    schema: ProcessSchema, policy: Policy, examples: list[CriticExample], future: list[Case], seeds: int = 8
) -> dict[str, Any]:
    inputs, correct = future_steps(schema, policy, future)
    fits = []
    for seed in range(seeds):
        critic, certify = critic_for(schema, examples, seed=seed)
        thresholds = certify_keys(critic, certify, pooled=True)
        scores = np.asarray(critic.score([e.critic_input() for e in certify]))
        limits = np.asarray([thresholds.get(key(e.critic_input(), True), np.inf) for e in certify])
        fits.append(
            {
                "seed": seed,
                "certified_coverage": float((scores >= limits).mean()),
                **judged(executed(critic, thresholds, inputs, True), correct),
            }
        )
    pairs = list(zip(fits[0::2], fits[1::2], strict=True))
    return {
        "fits": fits,
        "best_of_two_by_certified_coverage": [
            max(a, b, key=lambda f: f["certified_coverage"])["precision"] for a, b in pairs
        ],
        "first_of_two": [a["precision"] for a, _ in pairs],
    }


def experiment_biased_feedback(
    schema: ProcessSchema, policy: Policy, examples: list[CriticExample], future: list[Case], chunks: int = 4
) -> dict[str, Any]:
    critic, certify = critic_for(schema, examples)
    thresholds = certify_keys(critic, certify, pooled=True)
    parts = np.array_split(np.arange(len(future)), chunks)
    deferred_pool, holdout_pool = list(examples), list(examples)
    rows = []
    for k, index in enumerate(parts[:-1]):
        chunk_examples = copilot_examples(schema, policy, [future[i] for i in index])
        mask = executed(critic, thresholds, [e.critic_input() for e in chunk_examples], True)
        deferred = [e for e, m in zip(chunk_examples, mask, strict=True) if not m]
        deferred_pool += deferred
        holdout_pool += [e for e in chunk_examples if in_exploration_holdout(e.event.session_id, 0.05)]
        inputs, correct = future_steps(schema, policy, [future[i] for i in parts[k + 1]])
        row: dict[str, Any] = {
            "chunk": k,
            "acceptance_of_deferred_steps": float(np.mean([e.label for e in deferred])) if deferred else None,
            "acceptance_of_all_steps": float(np.mean([e.label for e in chunk_examples])),
            "acceptance_at_certification": float(np.mean([e.label for e in certify])),
        }
        for name, pool in (("deferrals_only", deferred_pool), ("exploration_holdout", holdout_pool)):
            refit, recertify = critic_for(schema, pool)
            row[name] = judged(executed(refit, certify_keys(refit, recertify, True), inputs, True), correct)
        rows.append(row)
    return {"rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--logs", nargs="+", default=["helpdesk", "bpi2012w"])
    parser.add_argument("--out", type=Path, default=RESULTS / "guarantee_diagnosis.json")
    args = parser.parse_args()
    payload: dict[str, Any] = {
        "benchmark": "guarantee_diagnosis",
        "command": "python bench/guarantee_diagnosis.py",
        "machine": {"python": platform.python_version(), "processor": platform.machine(), "cores": 2},
        "target": LEARNING.target_precision,
        "confidence": LEARNING.confidence,
        "logs": {},
    }
    started = time.monotonic()
    for log in args.logs:
        (process,) = load_log(log, data_dir=DATASETS_DIR)
        schema, cases = process.schema, [c for c in process.cases if c.steps]
        train, copilot, future = chronological_split(cases, (0.4, 0.3, 0.3))
        policy = EmbeddedPolicy.train(schema, train)
        examples = copilot_examples(schema, policy, copilot)
        critic, certify = critic_for(schema, examples)
        result = {
            "replay": experiment_replay(schema, policy, critic, certify, train, future),
            "open_cases": experiment_open_cases(schema, policy, critic, certify, future),
            "drift": experiment_drift(schema, cases),
            "selection": experiment_selection(schema, policy, examples, future),
            "biased_feedback": experiment_biased_feedback(schema, policy, examples, future),
        }
        payload["logs"][log] = result
        print(log, json.dumps(result["replay"]), json.dumps(result["open_cases"]), flush=True)
    payload["wall_s"] = round(time.monotonic() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
