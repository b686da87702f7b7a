"""The models the decide worker runs: trained on a Helpdesk slice and published in the selective
stage, and the held-out cases the load generator replays."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.streaming.settings import BenchConfig


@dataclass
class Prepared:
    """Models installed for the ``helpdesk`` process and the held-out cases to replay."""

    models_dir: Path
    replay: list[Any]
    info: dict[str, Any]


def prepare_models(config: BenchConfig, models_dir: Path) -> Prepared:
    """Train a policy and critic on a Helpdesk slice and publish them in the selective stage.

    The embedded torch policy and critic are used when they import and train; otherwise the n-gram
    policy with the policy-confidence critic (the JSON says which, and why).
    """
    import numpy as np

    from selective_autonomy.inference.ngram import NGramPolicy
    from selective_autonomy.inference.protocol import CriticInput, PolicyConfidenceCritic, PolicySignals
    from selective_autonomy.inference.registry import ModelRegistry, ServicePointer
    from selective_autonomy.inference.thresholds import Thresholds
    from selective_autonomy.schemas.event_parts import ActionTier, Stage
    from selective_autonomy.traces import datasets
    from selective_autonomy.traces.eventlog import derive_process_schema, iter_cases, read_event_log
    from selective_autonomy.traces.mapping import load_mapping

    started = time.perf_counter()
    limit = config.train_cases + config.replay_cases + config.train_cases // 5
    table = read_event_log(datasets.helpdesk_log_path(), load_mapping("helpdesk"), limit_cases=limit)
    schema = derive_process_schema(table)
    cases = sorted(iter_cases(table), key=lambda c: (c.started_at, c.case_id))
    n_cal = max(20, config.train_cases // 5)
    train, calibration, replay = (
        cases[: config.train_cases],
        cases[config.train_cases : config.train_cases + n_cal],
        cases[config.train_cases + n_cal :],
    )
    registry = ModelRegistry(models_dir)
    registry.save_schema(schema)
    process_dir = registry.process_dir(schema.process_id)
    info: dict[str, Any] = {
        "process_id": schema.process_id,
        "train_cases": len(train),
        "calibration_cases": len(calibration),
        "replay_cases": len(replay),
        "replay_events_per_round": sum(len(c.steps) for c in replay),
    }

    def critic_inputs(policy: Any, source: Sequence[Any]) -> tuple[list[Any], list[bool]]:
        events = [case.state_event(i) for case in source for i in range(len(case.steps))]
        targets = [step.action for case in source for step in case.steps]
        items, labels = [], []
        for event, target, proposal in zip(events, targets, policy.propose(events), strict=True):
            if proposal.top is None:
                continue
            spec = schema.action(proposal.top.action.action_type)
            tier = spec.tier if spec is not None else ActionTier.critical
            items.append(
                CriticInput(event=event, action=proposal.top.action, tier=tier, signals=PolicySignals.of(proposal, 0))
            )
            labels.append(proposal.top.action.canonical_json() == target.canonical_json())
        return items, labels

    pointer_paths: dict[str, str | None] = {"policy": None, "critic": None}
    policy: Any
    try:
        from selective_autonomy.inference import embedded_policy
        from selective_autonomy.inference.training import TrainConfig

        policy = embedded_policy.EmbeddedPolicy.train(
            schema, train, embedded_policy.EmbeddedConfig(train=TrainConfig(max_epochs=12, progress=False))
        )
        info["policy_kind"] = "embedded"
    except Exception as exc:  # optional here: fall back to the n-gram policy, and say why
        info["policy_kind"] = "ngram"
        info["embedded_policy_unavailable"] = f"{type(exc).__name__}: {exc}"
        policy = NGramPolicy(schema).fit(train)
    meta = policy.train_meta(train)
    pointer_paths["policy"] = f"policy/{meta.version}"
    policy.save(process_dir / "policy" / meta.version, meta)
    critic: Any
    try:
        from selective_autonomy.inference.critic import CriticConfig, train_critic

        # The critic learns whether the policy's top proposal was the recorded action, on the last
        # third of the training slice, stopping early on half of the calibration cases.
        items, labels = critic_inputs(policy, train[-max(50, len(train) // 3) :])
        hold_items, hold_labels = critic_inputs(policy, calibration[: len(calibration) // 2])
        critic = train_critic(schema, items, labels, hold_items, hold_labels, CriticConfig(epochs=10))
        critic_meta = critic.new_meta(len(items), {})
        pointer_paths["critic"] = f"critic/{critic_meta.version}"
        critic.save(process_dir / "critic" / critic_meta.version, critic_meta)
        info["critic_kind"] = "embedded"
    except Exception as exc:  # optional here: fall back to the policy-confidence critic
        info["critic_kind"] = "policy-confidence"
        info["embedded_critic_unavailable"] = f"{type(exc).__name__}: {exc}"
        critic = PolicyConfidenceCritic()
    info["models"] = f"{info['policy_kind']} policy + {info['critic_kind']} critic"

    # Thresholds: the critic-score quantile that executes `execute_share` of calibration steps, so
    # the benchmark exercises both outputs (a real deployment certifies them with the learning loop).
    cal_items, cal_labels = critic_inputs(policy, calibration)
    scores = np.asarray(critic.score(cal_items), dtype=np.float64)
    threshold = float(np.quantile(scores, 1.0 - config.execute_share)) if len(scores) else 0.5
    executed = scores >= threshold
    values = {
        f"{schema.process_id}/{cluster.id}/{tier.value}": threshold
        for cluster in schema.business_clusters
        for tier in ActionTier
    }
    registry.publish(
        schema.process_id,
        ServicePointer(
            policy=pointer_paths["policy"],
            critic=pointer_paths["critic"],
            thresholds=Thresholds(values=values, version="bench-quantile"),
            stages={cluster.id: Stage.selective for cluster in schema.business_clusters},
        ),
    )
    accepted = np.asarray(cal_labels, dtype=bool)
    info.update(
        policy_version=policy.version,
        critic_version=critic.version,
        threshold=threshold,
        calibration_execute_share=float(executed.mean()) if len(scores) else None,
        calibration_precision_executed=float(accepted[executed].mean()) if executed.any() else None,
        calibration_top1_accuracy=float(accepted.mean()) if len(accepted) else None,
        prepare_s=round(time.perf_counter() - started, 2),
    )
    return Prepared(models_dir=models_dir, replay=replay, info=info)
