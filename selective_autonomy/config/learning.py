"""Settings of the learning loop (the ``learning`` section) and the stage rules inside it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from selective_autonomy.config._section import Section


class StageRules(Section):
    """What the stage machine (``learning.stages.next_stage``) decides by; part of the learning section."""

    target_precision: float = Field(default=0.9, gt=0, le=1, description="Certified precision of executed steps.")
    min_certified_coverage: float = Field(default=0.05, ge=0, le=1, description="Promote to selective above this.")


class LearningSettings(StageRules):
    """When and how feedback retrains the critic, recertifies thresholds, watches them and moves stages.

    A :class:`StageRules` itself, so the rules are declared once and the section is passed as they are.
    """

    retrain_every_feedback: int = Field(default=500, ge=1, description="Run the learning loop after this many.")
    retrain_every_s: float = Field(default=600.0, gt=0, description="...or after this long with any new feedback.")
    monitor_every_s: float = Field(
        default=1.0, gt=0, description="Longest wait before a judged unattended step (audit) reaches the monitor."
    )
    monitor_arl: float = Field(
        default=10_000.0,
        gt=1,
        description="The change detector's threshold: judged steps at the target between false alarms, on average.",
    )
    threshold_step: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="How far one judged unattended step moves its cluster's thresholds above the certified ones "
        "(a rejection raises them by step * target, an acceptance lowers them by step * (1 - target)); 0: never.",
    )
    confidence: float = Field(
        default=0.9, gt=0, lt=1, description="Probability that the precision holds; 1 - it bounds false alarms."
    )
    min_calibration_samples: int = Field(default=100, ge=10, description="Per (process, cluster, tier, action type).")
    certify_blocks: int = Field(
        default=1,
        ge=1,
        le=8,
        description="Consecutive time blocks of the certifying evidence; a threshold runs only where each block "
        "alone certifies it, so a period the pooled evidence averages away still counts (docs/guarantee.md).",
    )
    min_judgements: int = Field(
        default=50, ge=0, description="Judgements an action type needs in the certifying evidence to run unattended."
    )
    min_critic_examples: int = Field(
        default=3_000,
        ge=20,
        description="Training examples before a critic is trained and compared with the policy's confidence: the "
        "comparison costs the certificate the evidence it is made on (synthetic ABCD, 2,300 training examples: "
        "0% certified coverage with a trained candidate, 17.5% with the policy's confidence alone).",
    )
    policy_update_examples: int = Field(
        default=2_000, ge=20, description="Endorsed actions the policy has not learned from before it is updated."
    )
    holdout_fraction: float = Field(
        default=0.2, gt=0, lt=0.5, description="Unbiased evidence before the certifying part: fits, chooses the critic."
    )
    calibration_fraction: float = Field(
        default=0.3, gt=0, lt=0.6, description="Newest share of the unbiased evidence: certifies the thresholds."
    )
    recertify_after: int = Field(
        default=500,
        ge=1,
        description="New unbiased examples a selective cluster needs before it is recertified: every certificate is "
        "a test that may fail, so issuing one per run on nearly the same evidence would multiply the chances.",
    )
    window_feedback: int = Field(
        default=20_000, ge=100, description="Newest feedback records one run reads: bounds its cost as feedback grows."
    )
    exploration_share: float = Field(
        default=0.05, ge=0, lt=1, description="Share of sessions that stay in copilot while their cluster is selective."
    )
    critic: Literal["auto", "confidence"] = Field(
        default="auto",
        description="auto: choose among the policy-confidence critic, the critic in service and a newly trained one "
        "on evidence the certificate does not use; confidence: always the policy's own probability.",
    )
    promotion: Literal["automatic", "confirmed"] = Field(
        default="automatic",
        description="copilot -> selective: automatic, the learning loop promotes a cluster once certified; "
        "confirmed, it proposes the promotion in the service pointer and a supervisor confirms it (selauto stage "
        "confirm, or the console). Demotions and logging -> copilot stay automatic either way.",
    )
    first_policy_cases: int = Field(
        default=300,
        ge=2,
        description="Complete cases recorded from ui.state before a process with no policy gets its first one, "
        "trained on them; its clusters then move from logging to copilot.",
    )
    first_policy_eval_fraction: float = Field(
        default=0.2, gt=0, lt=1, description="Newest share of those cases held out to measure the first policy's top-1."
    )
    first_policy_check_s: float = Field(
        default=10.0, gt=0, description="How often a process with no policy is checked for enough recorded cases."
    )
    trace_ending_actions: list[str] = Field(
        default_factory=lambda: ["close_chat"],
        description="Action types that end a recorded session: an operator's session ended by one is a complete case.",
    )
    trace_idle_s: float = Field(
        default=86_400.0,
        gt=0,
        description="A recorded session with no new state for this long (by state timestamps, against the newest "
        "state of its process) is a complete case too, without an invented ending.",
    )
    window_cases: int = Field(
        default=20_000, ge=10, description="Newest complete cases one run reads from the trace table: bounds its cost."
    )
