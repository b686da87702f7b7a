"""The learning loop's decision, as a pure plan: from the evidence, what to train, certify, promote
or demote. Nothing here reads or writes the store, the models directory or a topic; :mod:`apply`
publishes a plan. So every rule is unit-tested on hand-made evidence, without Kafka.

Order within one run, and why:

1. the monitor first: an alarm (precision of judged unattended steps fell below target, by the
   anytime-valid test) demotes the cluster and restarts its evidence at the alarm, so this run's
   certification for it can only use what came after;
2. the policy, if it learns incrementally and is no worse on the newest unbiased feedback, trained
   and chosen only on answers older than the certifying split (and certified only on answers newer
   than any it saw); every example recorded under another policy version is then relabelled for its
   suggestions;
3. the critic, chosen on the selection split;

Steps 2 to 4 run only when some cluster needs a certificate: it is not selective, its monitor
alarmed, or ``learning.recertify_after`` new unbiased examples arrived since its certificate.
Every certificate is a test that fails with probability up to 1 - confidence; reissuing one per
run on nearly the same evidence, with a critic chosen anew each time, multiplies those chances
(on BPI 2012 a run every 1,000 answers left a certificate in force that realised 86% under a 90%
target; docs/guarantee.md).
4. certification on the certifying split (or, when nothing was chosen or fitted, on all unbiased
   evidence), per (cluster, tier, action type);
5. stages, from the certificate and the monitor, except where a person holds them;
6. the thresholds of every selective cluster: the certified ones, raised by the judged steps that
   ran since the certificate (:mod:`threshold_lift`), so a slow drift the monitor cannot prove yet
   still makes the gate stricter.

Hand controls (:mod:`selective_autonomy.controls`) win over the loop, until a person changes them:

* a stage set by hand (``pointer.manual``) is never moved, up or down. The loop still monitors and
  certifies the cluster: a new certificate replaces its thresholds, and a monitor alarm or a
  recertification that certifies nothing voids them, so a cluster held in selective runs only what
  a current certificate passes (nothing, once voided) but stays selective. ``selauto stage release``
  gives the cluster back to the loop;
* a paused cluster (or one of a paused process) is never promoted; it may still be demoted.

Each move the loop would have made is in the plan's notes and ``held``.

With ``learning.promotion = confirmed`` the loop does not promote ``copilot -> selective`` itself:
it records the promotion it would make in ``pointer.pending_promotions`` (the certificate it rests
on, the certified coverage, when proposed) and the cluster stays in copilot until a supervisor
confirms it (``selauto stage confirm``, :meth:`~selective_autonomy.controls.service.HandControls.confirm`).
Every run proposes afresh: a proposal is kept (with its first ``proposed_at``) while it rests on
the certificate in force, and dropped once that certificate is replaced or voided, or the loop
would no longer promote. A paused cluster is still proposed (and held: the pause forbids the
confirmation, not the proposal); one whose stage is set by hand is not, since only a person moves
it. Demotions and ``logging -> copilot`` stay automatic: waiting for a person to stop what the
monitor proved wrong, or to let a cluster start suggesting, would only cost precision or feedback.

The records a run takes in and hands out (:class:`LearningInput`, :class:`LearningPlan`) are in
:mod:`plan_records`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from selective_autonomy.config import LearningSettings
from selective_autonomy.inference.certificate import Certificate
from selective_autonomy.inference.registry import PendingPromotion, ServicePointer
from selective_autonomy.inference.thresholds import Thresholds
from selective_autonomy.learning.calibration import CalibrationReport
from selective_autonomy.learning.certify import certificates, certify
from selective_autonomy.learning.critic_choice import CriticChoice, choose_critic
from selective_autonomy.learning.evidence import CriticExample, EvidenceSource, MonitorOutcome
from selective_autonomy.learning.monitor import MonitorReading, watch
from selective_autonomy.learning.plan_records import LearningInput, LearningPlan, NewArtefact
from selective_autonomy.learning.policy_update import evaluated_to, for_policy, update_policy
from selective_autonomy.learning.splits import EvidenceSplits, split_evidence
from selective_autonomy.learning.stages import StageDecision, StageEvidence, next_stage
from selective_autonomy.learning.step_times import StepTimes
from selective_autonomy.learning.threshold_lift import threshold_lift
from selective_autonomy.schemas.event_parts import Stage
from selective_autonomy.store.models import ModelKind


def _monitor(
    outcomes: Sequence[MonitorOutcome], cluster: str, since: datetime | None, config: LearningSettings
) -> MonitorReading | None:
    if since is None:
        return None
    mine = _after(outcomes, cluster, since)
    return watch(
        [o.accepted for o in mine],
        [o.inclusion_probability for o in mine],
        config.target_precision,
        1.0 - config.confidence,
        config.monitor_arl,
    )


def _after(outcomes: Sequence[MonitorOutcome], cluster: str, since: datetime) -> list[MonitorOutcome]:
    """The cluster's outcomes received after ``since``, in the order they were received."""
    mine = [o for o in outcomes if o.business_cluster == cluster and o.received_at > since]
    return sorted(mine, key=lambda o: (o.received_at, o.feedback_id))


def _certifying_from(examples: Sequence[CriticExample], config: LearningSettings) -> datetime | None:
    """When the oldest answer that would certify this run was given (None: none would)."""
    return min((e.given_at for e in split_evidence(examples, config).certify), default=None)


def _needs_certificate(
    cluster: str,
    stage: Stage,
    certificate: Certificate | None,
    examples: Sequence[CriticExample],
    config: LearningSettings,
) -> bool:
    """A cluster outside selective tries once it has enough unbiased evidence to certify a key; a
    selective one once ``learning.recertify_after`` new unbiased examples arrived since its certificate."""
    unbiased = [e for e in examples if e.business_cluster == cluster and e.source is EvidenceSource.exploration]
    if stage is not Stage.selective or certificate is None or certificate.received_to is None:
        return len(unbiased) >= config.min_calibration_samples
    return sum(e.received_at > certificate.received_to for e in unbiased) >= config.recertify_after


def plan_learning(
    inp: LearningInput, config: LearningSettings, *, retrain: bool = True, times: StepTimes | None = None
) -> LearningPlan:
    """The plan for one process. ``retrain=False`` only watches (cheap: after each audit).

    :param times: where the policy update, the critic choice and certification add their seconds.
    """
    times = times or StepTimes()
    pointer, schema = inp.pointer, inp.schema
    clusters = [c.id for c in schema.business_clusters]
    notes: list[str] = []
    stages = {c: pointer.stage(c) for c in clusters}
    evidence_since = dict(pointer.evidence_since)
    selective_since = dict(pointer.selective_since)
    thresholds = dict(pointer.thresholds.values)
    certs: dict[str, Certificate] = dict(pointer.certificates)
    decisions: dict[str, StageDecision] = {}
    held: dict[str, StageDecision] = {}
    proposed: dict[str, StageDecision] = {}
    pending: dict[str, PendingPromotion] = {}

    # 1. the monitor
    readings: dict[str, MonitorReading] = {}
    for cluster in clusters:
        if stages[cluster] is not Stage.selective:
            continue
        reading = _monitor(inp.outcomes, cluster, selective_since.get(cluster), config)
        if reading is None:
            continue
        readings[cluster] = reading
        if reading.alarm:
            mine = _after(inp.outcomes, cluster, selective_since[cluster])
            evidence_since[cluster] = mine[reading.alarm_at or 0].received_at

    artefacts: list[NewArtefact] = []
    policy_path, critic_path = pointer.policy, pointer.critic
    policy_version, critic_version = "", ""
    calibration: CalibrationReport | None = None
    chosen = "unchanged"
    certified_now: dict[str, Certificate] = {}
    ran: set[str] = set()
    examples = list(inp.examples)
    alarmed = {c for c, r in readings.items() if r.alarm}
    due = [c for c in clusters if c in alarmed or _needs_certificate(c, stages[c], certs.get(c), examples, config)]
    if retrain and inp.models is None:
        raise ValueError("retraining needs the models in service")
    if retrain and not due and inp.models is not None:
        notes.append("every selective cluster's certificate is current: nothing retrained or recertified")
        policy_version, critic_version = inp.models.policy.version, inp.models.critic.version
    if retrain and due and inp.models is not None:
        policy, critic = inp.models.policy, inp.models.critic
        # 2. the policy, from answers older than every certifying one
        with times.step("update_policy"):
            update, policy_notes = update_policy(
                policy, inp.policy_examples, config, before=_certifying_from(examples, config)
            )
        notes += policy_notes
        if update is not None:
            meta = update.policy.meta.model_copy(
                update={"metrics": {"feedback_top1": update.top1, "previous_top1": update.previous_top1}}
            )
            policy_path = f"policy/{meta.version}"
            artefacts.append(NewArtefact(ModelKind.policy, update.policy, meta, policy_path))
            policy = update.policy
        with times.step("for_policy"):
            examples = for_policy(examples, policy, schema)
        # 3. the critic
        splits = split_evidence(examples, config)
        with times.step("choose_critic"):
            choice, critic_notes = choose_critic(schema, critic, inp.critic_fitted_until, splits, config)
        notes += critic_notes
        critic, critic_path, chosen = _adopt(choice, critic_path, artefacts, splits)
        # 4. certification, only on evidence nothing was fitted or chosen on
        pool = splits.certify if (choice.compared or choice.trained is not None) else splits.unbiased
        pool = [e for e in pool if e.received_at >= evidence_since.get(e.business_cluster, e.received_at)]
        seen_to = evaluated_to(policy)
        if seen_to is not None:
            # A policy that learned from or was chosen on an answer looks better there than it is:
            # on BPI 2012 W an update fitted to the certifying answers was certified for 57.6%
            # coverage, and its judged unattended steps came in at 79.8% under a 90% target
            # (docs/guarantee.md). Its certificate uses only answers given later.
            kept = [e for e in pool if e.given_at > seen_to]
            if len(kept) < len(pool):
                notes.append(f"{len(pool) - len(kept)} certifying examples left out: policy {policy.version} saw them")
            pool = kept
        if pool:
            with times.step("certify"):
                calibration = certify(critic, pool, config)
            certified_now = certificates(calibration, pool, critic.version, policy.version, config)
            ran = {
                cluster
                for cluster in clusters
                if any(
                    r.samples >= config.min_calibration_samples
                    for r in calibration.results
                    if r.key.startswith(f"{schema.process_id}/{cluster}/")
                )
            }
        else:
            notes.append("no unbiased evidence to certify on")
        policy_version, critic_version = policy.version, critic.version
        if (policy_path, critic_path) != (pointer.policy, pointer.critic):
            # A certificate is for the policy and critic it was earned with: with either replaced,
            # a cluster that could not be recertified now has none (and leaves selective).
            void = {c for c in clusters if c in certs and c not in ran}
            if void:
                notes.append(f"models changed: certificates of {sorted(void)} void until recertified")
            ran |= void

    # 5. stages
    rules = config  # the learning section is the stage rules
    prefix = f"{schema.process_id}/"
    for cluster in clusters:
        if cluster in ran:
            # The new certificate replaces the old one, certified or not (then the key set is empty).
            thresholds = {k: v for k, v in thresholds.items() if not k.startswith(f"{prefix}{cluster}/")}
            certs.pop(cluster, None)
            if cluster in certified_now:
                certs[cluster] = certified_now[cluster]
                thresholds |= {k: key.threshold for k, key in certified_now[cluster].keys.items()}
        evidence = StageEvidence(
            policy_in_service=policy_path is not None,
            certification_ran=cluster in ran,
            certified=cluster in certs,
            certified_coverage=calibration.certified_coverage(f"{prefix}{cluster}/")
            if calibration is not None and cluster in ran
            else (certs[cluster].coverage if cluster in certs else 0.0),
            monitor=readings.get(cluster),
        )
        decision = next_stage(stages[cluster], evidence, rules)
        promoting = decision is not None and decision.stage is Stage.selective and stages[cluster] is Stage.copilot
        confirm = promoting and config.promotion == "confirmed"
        if decision is not None and confirm and cluster not in pointer.manual:
            pending[cluster] = _proposal(
                pointer, cluster, certs[cluster], evidence.certified_coverage, decision, examples, inp.planned_at
            )
        hold = pointer.hand_hold(cluster, decision.stage) if decision is not None else None
        if decision is not None and hold is not None:
            held[cluster] = decision
            notes.append(
                f"{cluster}: would move {stages[cluster].value} -> {decision.stage.value} ({decision.reason}); {hold}"
            )
            if stages[cluster] is Stage.selective:
                # Held in selective against a demotion: what the loop would demote for (an alarm, a
                # recertification that certified nothing) disproves the certificate, so it goes and
                # nothing runs unattended here until a new one is earned.
                certs.pop(cluster, None)
                selective_since.pop(cluster, None)
                thresholds = {k: v for k, v in thresholds.items() if not k.startswith(f"{prefix}{cluster}/")}
            decision = None
        if decision is not None and confirm:
            proposed[cluster] = decision
            waiting = "still waiting" if pending[cluster] == pointer.pending_promotions.get(cluster) else "proposed"
            notes.append(
                f"{cluster}: promotion copilot -> selective {waiting} for a supervisor ({decision.reason}): "
                f"selauto stage confirm --process {schema.process_id} --cluster {cluster}"
            )
            decision = None
        if cluster in pointer.manual and stages[cluster] is Stage.selective and cluster in certs:
            # A held selective cluster's new certificate is watched from the newest evidence it saw.
            selective_since.setdefault(
                cluster, max((e.received_at for e in examples), default=certs[cluster].issued_at)
            )
        if decision is None:
            continue
        decisions[cluster] = decision
        if decision.stage is Stage.selective and stages[cluster] is Stage.copilot:
            # The monitor counts what arrives after the newest evidence this promotion saw: answer
            # times are the log's in a replay, and overlapping cases make them a poor clock for that.
            selective_since[cluster] = max((e.received_at for e in examples), default=certs[cluster].issued_at)
        elif decision.stage is Stage.copilot and stages[cluster] is Stage.selective:
            selective_since.pop(cluster, None)
            certs.pop(cluster, None)
            thresholds = {k: v for k, v in thresholds.items() if not k.startswith(f"{prefix}{cluster}/")}
        stages[cluster] = decision.stage

    # 6. the online lift over the certified thresholds
    lifts: dict[str, float] = {}
    for cluster, certificate in certs.items():
        if stages[cluster] is not Stage.selective:
            continue
        since = max(filter(None, (certificate.received_to, selective_since.get(cluster))), default=None)
        mine = _after(inp.outcomes, cluster, since) if since is not None else []
        lift = threshold_lift(
            [o.accepted for o in mine],
            [o.inclusion_probability for o in mine],
            config.target_precision,
            config.threshold_step,
        )
        if lift > 0:
            lifts[cluster] = lift
            notes.append(
                f"{cluster}: thresholds {lift:+.3f} above the certified ones after {len(mine)} judged unattended steps"
            )
        thresholds |= {k: key.threshold + lift for k, key in certificate.keys.items()}

    version = pointer.thresholds.version
    if calibration is not None:
        version = f"thresholds-{critic_version}-{len(examples)}"
    new_pointer = pointer.model_copy(
        update={
            "policy": policy_path,
            "critic": critic_path,
            "thresholds": Thresholds(values=thresholds, version=version),
            "stages": stages,
            "certificates": certs,
            # A monitor-only run changes stages on an alarm and nothing else.
            "exploration_share": config.exploration_share if retrain else pointer.exploration_share,
            "selective_since": selective_since,
            "evidence_since": evidence_since,
            "threshold_lift": lifts,
            "pending_promotions": pending,
        }
    )
    return LearningPlan(
        process_id=schema.process_id,
        previous=pointer,
        pointer=new_pointer,
        artefacts=artefacts,
        calibration=calibration,
        monitor=readings,
        decisions=decisions,
        lifts=lifts,
        held=held,
        proposed=proposed,
        critic=chosen,
        critic_version=critic_version,
        policy_version=policy_version,
        examples=len(examples),
        notes=notes,
    )


def _proposal(
    pointer: ServicePointer,
    cluster: str,
    certificate: Certificate,
    coverage: float,
    decision: StageDecision,
    examples: Sequence[CriticExample],
    planned_at: datetime | None,
) -> PendingPromotion:
    """The promotion to leave to a supervisor: the one already pending while it rests on the same
    certificate (a run that changed nothing publishes nothing, and ``proposed_at`` says how long a
    supervisor has let it wait), else a new one."""
    previous = pointer.pending_promotions.get(cluster)
    if previous is not None and previous.certificate == certificate:
        return previous
    return PendingPromotion(
        certificate=certificate,
        certified_coverage=coverage,
        reason=decision.reason,
        proposed_at=planned_at or certificate.issued_at,
        # As an automatic promotion sets selective_since: once confirmed, the monitor counts what
        # arrives after the newest evidence the proposal saw.
        watch_from=max((e.received_at for e in examples), default=certificate.issued_at),
    )


def _adopt(
    choice: CriticChoice, current_path: str | None, artefacts: list[NewArtefact], splits: EvidenceSplits
) -> tuple[Any, str | None, str]:
    """The critic, its artefact path and the choice's name; a new critic becomes an artefact."""
    if choice.name == "confidence":
        return choice.critic, None, "confidence"
    if choice.name == "in_service" or choice.trained is None:
        return choice.critic, current_path, choice.name
    fitted = [*splits.train, *splits.select]
    meta = choice.trained.new_meta(
        len(splits.train),
        {f"selection_coverage_{k}": v for k, v in choice.selection_coverage.items()},
        train_from=min(e.given_at for e in fitted),
        train_to=choice.fitted_until,
    )
    path = f"critic/{meta.version}"
    choice.trained.meta = meta  # its version, before apply writes it under that name
    artefacts.append(NewArtefact(ModelKind.critic, choice.trained, meta, path))
    return choice.trained, path, "new"
