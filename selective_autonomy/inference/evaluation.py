"""Offline evaluation of policies on held-out cases: accuracy, per action type, and the selective curve.

Selective autonomy executes a step only when it is confident, so overall accuracy is half the
story: the selective curve shows the precision (top-1 exactly right) of the steps a policy would
take on its own as the confidence threshold on its top-1 probability moves, against the share of
steps it would take (coverage). Reports are pydantic (JSON for ``bench/results``) and plotted side
by side, the n-gram baseline next to the candidates.

No torch here: any :class:`Policy` is evaluated through :meth:`Policy.propose`.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from tqdm import tqdm

from selective_autonomy.config import DEFAULT_TOP_K
from selective_autonomy.inference.datasets import Examples
from selective_autonomy.inference.protocol import ModelUnavailable, Policy, Proposal
from selective_autonomy.schemas.event_parts import Action
from selective_autonomy.schemas.events import UIStateChanged

TOP_K = 3
COVERAGE_LEVELS = (0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
MAX_CURVE_POINTS = 101


class ProcessRouter:
    """One policy per process behind the :class:`Policy` protocol (e.g. one per SGD service).

    Events are grouped by ``process_id``, each group goes to its own policy in one batch, and the
    proposals come back in the events' order.
    """

    def __init__(self, policies: Mapping[str, Policy]) -> None:
        self.policies = dict(policies)

    @property
    def version(self) -> str:
        versions = sorted({policy.version for policy in self.policies.values()})
        return versions[0] if len(versions) == 1 else f"{len(versions)} versions"

    def propose(self, events: Sequence[UIStateChanged], top_k: int = DEFAULT_TOP_K) -> list[Proposal]:
        groups: dict[str, list[int]] = defaultdict(list)
        for i, event in enumerate(events):
            groups[event.process_id].append(i)
        out: list[Proposal | None] = [None] * len(events)
        for process_id, indices in groups.items():
            policy = self.policies.get(process_id)
            if policy is None:
                raise ModelUnavailable(f"no policy for process {process_id!r}")
            for i, proposal in zip(indices, policy.propose([events[i] for i in indices], top_k), strict=True):
                out[i] = proposal
        return [p for p in out if p is not None]


@dataclass(frozen=True, slots=True)
class ProposalScore:
    """How one proposal fared against the recorded action."""

    target_type: str
    top1: bool
    top3: bool
    type_top1: bool
    type_top3: bool
    confidence: float
    """Top-1 probability; 0 when the policy proposed nothing."""


def score(proposal: Proposal, target: Action, k: int = TOP_K) -> ProposalScore:
    """Exact match is canonical equality of type and arguments; the type-only scores ignore arguments."""
    ranked = [c.action for c in proposal.candidates[:k]]
    key = target.canonical_json()
    exact = [a.canonical_json() == key for a in ranked]
    same_type = [a.action_type == target.action_type for a in ranked]
    return ProposalScore(
        target_type=target.action_type,
        top1=bool(exact) and exact[0],
        top3=any(exact),
        type_top1=bool(same_type) and same_type[0],
        type_top3=any(same_type),
        confidence=proposal.candidates[0].probability if proposal.candidates else 0.0,
    )


class TypeScore(BaseModel):
    model_config = ConfigDict(frozen=True)

    n: int
    top1: float
    top3: float
    type_top1: float


class CurvePoint(BaseModel):
    model_config = ConfigDict(frozen=True)

    threshold: float = Field(description="Act when the top-1 probability is at least this.")
    coverage: float = Field(description="Share of steps at or above the threshold.")
    precision: float = Field(description="Share of those steps whose top-1 is exactly the recorded action.")


class PolicyReport(BaseModel):
    """One policy on one test set."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    n: int
    top1: float
    top3: float
    type_top1: float
    type_top3: float
    no_candidate: int = Field(description="Steps where the policy proposed nothing.")
    per_action_type: dict[str, TypeScore] = Field(description="By the recorded action's type.")
    selective_curve: list[CurvePoint] = Field(description="Precision vs coverage, coverage increasing.")
    precision_at_coverage: dict[str, float] = Field(description="Precision of the most confident share of steps.")
    selective_area: float = Field(description="Mean precision over all coverages (area under the curve).")
    train_seconds: float | None = None
    latency_ms: dict[str, float] = Field(default_factory=dict, description="Median ms per batch, by measurement.")
    extra: dict[str, float] = Field(
        default_factory=dict, description="Other measurements, e.g. the LLM server's start-up seconds."
    )


class EvaluationReport(BaseModel):
    """Every policy on the same chronological test split of one log."""

    model_config = ConfigDict(frozen=True)

    log: str
    source: str = Field(description="Where the cases came from, and how the split was made.")
    created_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))
    fractions: tuple[float, float, float]
    processes: int
    train_cases: int
    test_cases: int
    test_examples: int
    policies: list[PolicyReport]


def _rate(flags: Sequence[bool]) -> float:
    return sum(flags) / len(flags) if flags else 0.0


def selective_curve(outcomes: Sequence[ProposalScore], max_points: int = MAX_CURVE_POINTS) -> list[CurvePoint]:
    """One point per distinct confidence (steps tied on confidence are taken or left together)."""
    ordered = sorted(outcomes, key=lambda o: -o.confidence)
    n = len(ordered)
    points: list[CurvePoint] = []
    correct = 0
    for i, outcome in enumerate(ordered):
        correct += outcome.top1
        if i + 1 == n or ordered[i + 1].confidence != outcome.confidence:
            points.append(CurvePoint(threshold=outcome.confidence, coverage=(i + 1) / n, precision=correct / (i + 1)))
    if len(points) > max_points:
        step = (len(points) - 1) / (max_points - 1)
        points = [points[round(j * step)] for j in range(max_points)]
    return points


def _precision_at(ordered_correct: Sequence[bool], coverage: float) -> float:
    take = max(1, math.ceil(coverage * len(ordered_correct)))
    return _rate(ordered_correct[:take])


def summarise(name: str, version: str, outcomes: Sequence[ProposalScore]) -> PolicyReport:
    """Aggregate per-step outcomes into a report."""
    by_type: dict[str, list[ProposalScore]] = defaultdict(list)
    for outcome in outcomes:
        by_type[outcome.target_type].append(outcome)
    ordered_correct = [o.top1 for o in sorted(outcomes, key=lambda o: -o.confidence)]
    running, area = 0, 0.0
    for k, correct in enumerate(ordered_correct, start=1):
        running += correct
        area += running / k
    return PolicyReport(
        name=name,
        version=version,
        n=len(outcomes),
        top1=_rate([o.top1 for o in outcomes]),
        top3=_rate([o.top3 for o in outcomes]),
        type_top1=_rate([o.type_top1 for o in outcomes]),
        type_top3=_rate([o.type_top3 for o in outcomes]),
        no_candidate=sum(1 for o in outcomes if o.confidence == 0.0),
        per_action_type={
            kind: TypeScore(
                n=len(group),
                top1=_rate([o.top1 for o in group]),
                top3=_rate([o.top3 for o in group]),
                type_top1=_rate([o.type_top1 for o in group]),
            )
            for kind, group in sorted(by_type.items())
        },
        selective_curve=selective_curve(outcomes),
        precision_at_coverage={f"{c:g}": _precision_at(ordered_correct, c) for c in COVERAGE_LEVELS}
        if outcomes
        else {},
        selective_area=area / len(ordered_correct) if ordered_correct else 0.0,
    )


def evaluate_policy(name: str, policy: Policy, examples: Examples, batch_size: int = 256) -> PolicyReport:
    """Propose for every held-out state (top 3, in batches) and score against the recorded actions."""
    outcomes: list[ProposalScore] = []
    starts = range(0, len(examples), batch_size)
    for start in tqdm(starts, desc=f"evaluate {name}", unit="batch", leave=False):
        events = examples.events[start : start + batch_size]
        proposals = policy.propose(events, top_k=TOP_K)
        targets = examples.targets[start : start + batch_size]
        outcomes.extend(score(p, t) for p, t in zip(proposals, targets, strict=True))
    return summarise(name, policy.version, outcomes)


def median_ms(
    run: Callable[[], object], repeats: int = 20, warmup: int = 2, clock: Callable[[], float] = time.perf_counter
) -> float:
    """Median time of ``run()`` in milliseconds, after a few warm-up calls.

    :param clock: ``time.perf_counter`` (default) for wall time; ``time.process_time`` for the CPU
        time of this process, which a busy shared machine does not inflate (models run single-threaded).
    """
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        started = clock()
        run()
        times.append((clock() - started) * 1000.0)
    return statistics.median(times)


def plot_report(report: EvaluationReport, path: Path) -> None:
    """Accuracy bars and selective curves of every policy, side by side, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, (bars, curves) = plt.subplots(1, 2, figsize=(12, 4.5))
    metrics = ("top1", "top3", "type_top1")
    width = 0.8 / max(1, len(report.policies))
    for i, policy in enumerate(report.policies):
        values = [getattr(policy, metric) for metric in metrics]
        xs = [m + i * width for m in range(len(metrics))]
        drawn = bars.bar(xs, values, width=width, label=policy.name)
        bars.bar_label(drawn, labels=[f"{v:.3f}" for v in values], fontsize=8)
        coverage = [0.0] + [p.coverage for p in policy.selective_curve]
        precision = [policy.selective_curve[0].precision if policy.selective_curve else 0.0]
        precision += [p.precision for p in policy.selective_curve]
        curves.plot(coverage, precision, label=f"{policy.name} (area {policy.selective_area:.3f})")
    bars.set_xticks([m + width * (len(report.policies) - 1) / 2 for m in range(len(metrics))], list(metrics))
    bars.set_ylim(0, 1.05)
    bars.set_ylabel("accuracy")
    bars.set_title(f"{report.log}: {report.test_examples} test steps, {report.test_cases} cases")
    bars.legend(loc="lower right")
    curves.set_xlim(0, 1)
    curves.set_ylim(0, 1.02)
    curves.set_xlabel("coverage (share of steps taken autonomously)")
    curves.set_ylabel("precision (top-1 exactly right)")
    curves.set_title("selective curve: threshold on top-1 probability")
    curves.grid(alpha=0.3)
    curves.legend(loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
