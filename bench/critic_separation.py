"""Does any critic separate right from wrong steps of one action type in the future window?

The guarantee benchmark's BPI 2012 W row at 0.95 executes one action type ('W_Nabellen offertes')
and misses its target after a drift that starts after the certifying window (docs/guarantee.md).
This measures, on the same split, policy and copilot stage as ``bench/bench_guarantee.py``, every
suggestion of that type labelled as the copilot stage labels it (the future replayed in copilot,
so every step is judged):

* how the policy's confidence and the learned critic (the production fit on the copilot answers'
  training and selection splits) separate in the selection, certifying and future windows (AUC,
  precision of the top share at equal coverage), and which the critic choice would take;
* what the operators did instead when they did not accept;
* whether features of the state's own history (calls so far, the run of calls, case age, time since
  registration, hour, weekday, amount, the policy's signals) give a classifier that separates in
  the future (all of it, and its cases that ended before the log did), trained on the copilot
  answers as the loop would; with, as an upper bound that is not
  in the state, times taken from the log (since the first call, the last gap, the mean gap between
  calls);
* the same trained inside the future (its first half, tested on its second half), once on all cases
  and once on cases that ended before the log did: a case the log cuts off cannot end, so its
  suggestions are accepted and it is young, which a classifier can learn without learning anything
  about operators.

Usage: python -m bench.critic_separation [--log bpi2012w] [--action "W_Nabellen offertes"] [--min-score 0.9]
Writes bench/results/critic_separation_<log>.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from bench.bench_guarantee import Prepared
from bench.bench_quality import processes_of
from selective_autonomy.config import LearningSettings
from selective_autonomy.inference.protocol import Critic, PolicyConfidenceCritic
from selective_autonomy.inference.registry import ProcessModels, ServicePointer
from selective_autonomy.learning.critic_choice import empirical_coverage, fit_critic
from selective_autonomy.learning.evidence import CriticExample, critic_examples
from selective_autonomy.learning.splits import split_evidence
from selective_autonomy.simulator.offline import offline_copilot, with_context
from selective_autonomy.traces.format import Case

RESULTS = Path(__file__).parent / "results"
TOP_SHARES = (0.9, 0.8, 0.6, 0.3)
TARGETS = (0.85, 0.9, 0.95)

STATE_FEATURES = ("calls", "call_run", "case_age_d", "since_registration_d", "step", "hour", "weekday", "amount")
POLICY_FEATURES = ("probability", "top1", "margin", "entropy")
LOG_FEATURES = ("since_first_call_d", "last_gap_d", "mean_call_gap_d")
"""Times from the log, not in the state (actions carry no time): an upper bound on what timing adds."""


def _days(a: datetime, b: datetime) -> float:
    return (a - b).total_seconds() / 86400.0


def state_features(example: CriticExample, action: str) -> list[float]:
    """Features of the state alone: what a critic could compute from the UI state event."""
    event = example.event
    state = event.ui_state
    recent = [a.action_type for a in state.recent_actions]
    run = 0
    for past in reversed(recent):
        if past != action:
            break
        run += 1
    registered = state.fields.get("reg_date")
    since_registration = (
        _days(event.timestamp, datetime.fromisoformat(registered)) if isinstance(registered, str) else -1.0
    )
    amount = state.fields.get("amount_req")
    return [
        float(sum(past == action for past in recent)),
        float(run),
        _days(event.timestamp, state.case_started_at) if state.case_started_at else -1.0,
        since_registration,
        float(event.state_version),
        event.timestamp.hour + event.timestamp.minute / 60.0,
        float(event.timestamp.weekday()),
        float(amount) if isinstance(amount, int | float) else -1.0,
    ]


def policy_features(example: CriticExample) -> list[float]:
    s = example.signals
    return [s.probability, s.top1_probability, s.margin, s.entropy]


def log_features(example: CriticExample, case: Case, action: str) -> list[float]:
    before = case.steps[: example.event.state_version]
    calls = [s.timestamp for s in before if s.action.action_type == action]
    gaps = [_days(b, a) for a, b in itertools.pairwise(calls)]
    return [
        _days(example.event.timestamp, calls[0]) if calls else -1.0,
        _days(before[-1].timestamp, before[-2].timestamp) if len(before) >= 2 else -1.0,
        float(np.mean(gaps)) if gaps else -1.0,
    ]


def separation(scores: np.ndarray, labels: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    """AUC of ``scores`` and of ``reference`` (the policy's confidence), and precision of each one's
    top shares: equal coverage, so the two compare directly."""
    if len(set(labels.tolist())) < 2:
        return {"n": len(labels)}
    out: dict[str, Any] = {
        "n": len(labels),
        "accepted": round(float(labels.mean()), 4),
        "auc": round(float(roc_auc_score(labels, scores)), 4),
        "auc_confidence": round(float(roc_auc_score(labels, reference)), 4),
    }
    for share in TOP_SHARES:
        k = max(1, int(share * len(labels)))
        out[f"top{int(share * 100)}"] = round(float(labels[np.argsort(-scores, kind="stable")[:k]].mean()), 4)
        out[f"top{int(share * 100)}_confidence"] = round(
            float(labels[np.argsort(-reference, kind="stable")[:k]].mean()), 4
        )
    return out


def classifier() -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        max_iter=150, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=40, random_state=0
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--log", default="bpi2012w")
    parser.add_argument("--action", default="W_Nabellen offertes")
    parser.add_argument("--min-score", type=float, default=0.9, help="the high-confidence region the gate executes")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    started = time.monotonic()
    action, floor = args.action, args.min_score
    ((schema, cases),) = processes_of(args.log, None, 1)
    prepared = Prepared(schema, cases)
    by_case = {c.case_id: c for c in cases}
    models = ProcessModels(schema, prepared.policy, PolicyConfidenceCritic(), ServicePointer(policy="in-memory"))
    future = critic_examples(with_context(list(offline_copilot(models, prepared.future))))
    splits = split_evidence(prepared.examples, LearningSettings())
    critic = fit_critic(schema, splits.train, splits.select)
    confidence = PolicyConfidenceCritic()

    def of_action(examples: Sequence[CriticExample], high: bool = False) -> list[CriticExample]:
        return [e for e in examples if e.action.action_type == action and (not high or e.signals.probability >= floor)]

    def labels(examples: Sequence[CriticExample]) -> np.ndarray:
        return np.asarray([e.label for e in examples], dtype=bool)

    def scored(c: Critic, examples: Sequence[CriticExample]) -> np.ndarray:
        return np.asarray(c.score([e.critic_input() for e in examples]), dtype=float)

    windows = {
        "select": splits.select,
        "certify": splits.certify,
        "future": future,
        "future_ended": [e for e in future if by_case[e.event.session_id].ended],
    }
    result: dict[str, Any] = {
        "benchmark": "critic_separation",
        "command": f"python -m bench.critic_separation --log {args.log} --action '{action}' --min-score {floor}",
        "machine": {"python": platform.python_version(), "processor": platform.machine()},
        "log": args.log,
        "action": action,
        "min_score": floor,
        "choice_on_selection_split": {
            f"{t:.2f}": {
                "confidence": round(empirical_coverage(confidence, splits.select, t), 4),
                "new_critic": round(empirical_coverage(critic, splits.select, t), 4),
            }
            for t in TARGETS
        },
        "learned_critic": {},
        "instead": {},
    }
    for name, window in windows.items():
        for high in (False, True):
            chosen = of_action(window, high)
            key = f"{name}{f'_p>={floor}' if high else ''}"
            result["learned_critic"][key] = separation(
                scored(critic, chosen), labels(chosen), scored(confidence, chosen)
            )
            if high:
                result["instead"][name] = dict(
                    Counter(e.operator_action.action_type for e in chosen if not e.label and e.operator_action)
                )

    def matrix(examples: Sequence[CriticExample], log: bool) -> np.ndarray:
        rows = []
        for e in examples:
            row = state_features(e, action) + policy_features(e)
            if log:
                row += log_features(e, by_case[e.event.session_id], action)
            rows.append(row)
        return np.asarray(rows, dtype=float)

    feature_sets: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "state": lambda x: x[:, : len(STATE_FEATURES)],
        "state+policy": lambda x: x[:, : len(STATE_FEATURES) + len(POLICY_FEATURES)],
        "state+policy+log_times": lambda x: x,
    }
    fit_on = of_action([*splits.train, *splits.select])
    x_fit, y_fit = matrix(fit_on, log=True), labels(fit_on)
    names = [*STATE_FEATURES, *POLICY_FEATURES, *LOG_FEATURES]
    result["history_features"] = {"features": names, "trained_on_copilot": {}, "single_feature_auc": {}}
    for name in ("certify", "future", "future_ended"):
        chosen = of_action(windows[name], high=True)
        x, y = matrix(chosen, log=True), labels(chosen)
        result["history_features"]["single_feature_auc"][name] = {
            f: round(float(roc_auc_score(y, x[:, i])), 3) for i, f in enumerate(names)
        }
        for set_name, columns in feature_sets.items():
            model = classifier().fit(columns(x_fit), y_fit)
            result["history_features"]["trained_on_copilot"][f"{name}/{set_name}"] = separation(
                model.predict_proba(columns(x))[:, 1], y, x[:, len(STATE_FEATURES)]
            )
    train_in = of_action(splits.train, high=True)
    result["history_features"]["single_feature_auc"]["train"] = {
        f: round(float(roc_auc_score(labels(train_in), matrix(train_in, log=True)[:, i])), 3)
        for i, f in enumerate(names)
    }

    in_future: dict[str, Any] = {}
    ordered = sorted(of_action(future), key=lambda e: e.event.timestamp)
    for subset, ended_only in (("all cases", False), ("cases that ended before the log did", True)):
        chosen = [e for e in ordered if not ended_only or by_case[e.event.session_id].ended]
        half = len(chosen) // 2
        first, second = chosen[:half], [e for e in chosen[half:] if e.signals.probability >= floor]
        x1, x2 = matrix(first, log=True), matrix(second, log=True)
        for set_name, columns in feature_sets.items():
            model = classifier().fit(columns(x1), labels(first))
            in_future[f"{subset}/{set_name}"] = separation(
                model.predict_proba(columns(x2))[:, 1], labels(second), x2[:, len(STATE_FEATURES)]
            )
    result["trained_in_future"] = in_future
    high_future = of_action(future, high=True)
    open_case = np.asarray([not by_case[e.event.session_id].ended for e in high_future])
    y_high = labels(high_future)
    result["future_open_cases"] = {
        "share": round(float(open_case.mean()), 4),
        "accepted_open": round(float(y_high[open_case].mean()), 4),
        "accepted_ended": round(float(y_high[~open_case].mean()), 4),
    }
    result["wall_s"] = round(time.monotonic() - started, 1)
    out = args.out or RESULTS / f"critic_separation_{args.log}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
