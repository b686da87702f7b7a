"""The cases of the feedback store against a real database, one module for every backend.

``tests/unit/store/test_store.py`` imports them and runs each on a SQLite file in ``tmp_path`` (the
``backend`` fixture here); ``tests/integration/test_store_postgres.py`` imports them and overrides
``backend``, so the same cases run on PostgreSQL.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from selective_autonomy.learning.evidence import critic_examples, policy_examples, verdict_counts
from selective_autonomy.schemas.event_parts import DeferralReason, Stage, Verdict
from selective_autonomy.store import (
    ActionStatus,
    FeedbackStore,
    HandControl,
    ModelKind,
    ProposalOutcome,
    SchemaNotReady,
    ServiceChangeKind,
    UnknownAction,
    UnknownModelVersion,
    migrate,
)
from selective_autonomy.store.engine import create_store_engine
from selective_autonomy.store.migration import head_revision
from selective_autonomy.store.tables import metadata
from tests.support.store import (
    ESCALATE,
    LOOKUP,
    REFUND,
    T0,
    answer,
    claim_in_process,
    executed_proposal,
    proposal_for,
    state,
)

TABLES = {
    "proposals",
    "feedback",
    "applied_actions",
    "stage_transitions",
    "hand_controls",
    "model_versions",
    "service_changes",
    "traces",
    "trace_sessions",
    "alembic_version",
}


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    """Which database the cases run on; the PostgreSQL module overrides it with ``postgresql``."""
    return str(request.param)


@pytest.fixture
def store_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The URL of a fresh, empty database on ``backend``."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'feedback.db'}"
    return str(request.getfixturevalue(f"{backend}_database_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[FeedbackStore]:
    with FeedbackStore.open(store_url) as opened:
        yield opened


# migrations -----------------------------------------------------------------------------------


def test_migrate_from_empty_creates_every_table_at_head(store_url: str) -> None:
    assert migrate(store_url) == head_revision()
    assert migrate(store_url) == head_revision()  # a second run is a no-op
    engine = create_store_engine(store_url)
    try:
        assert set(sa.inspect(engine).get_table_names()) >= TABLES
        with engine.connect() as connection:
            drift = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), metadata)
        assert drift == [], "tables.py and the migrations disagree: add a revision"
    finally:
        engine.dispose()


def test_a_store_from_before_confirmations_keeps_its_hand_controls_and_takes_confirmations(store_url: str) -> None:
    """0007 replaces the check on hand_controls.control (SQLite copies the table to do it)."""
    from alembic import command

    from selective_autonomy.store.migration import alembic_config

    command.upgrade(alembic_config(store_url), "0006")
    engine = create_store_engine(store_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO hand_controls (process_id, scope, control, reason, changed_by, at) "
                    "VALUES ('returns', '*', 'pause', 'outage', 'bob', :at)"
                ),
                {"at": T0},
            )
    finally:
        engine.dispose()
    assert migrate(store_url) == head_revision()
    with FeedbackStore.open(store_url) as store:
        store.record_hand_control(
            "returns", "eu", HandControl.confirm, reason="read it", changed_by="ada", stage=Stage.selective, at=T0
        )
        history = [(h.control, h.scope, h.stage) for h in store.hand_controls("returns")]
    assert history == [(HandControl.pause, "*", None), (HandControl.confirm, "eu", Stage.selective)]
    engine = create_store_engine(store_url)
    try:
        with engine.begin() as connection, pytest.raises(sa.exc.IntegrityError):
            connection.execute(
                sa.text(
                    "INSERT INTO hand_controls (process_id, scope, control, reason, changed_by, at) "
                    "VALUES ('returns', '*', 'unknown', 'x', 'bob', :at)"
                ),
                {"at": T0},
            )
    finally:
        engine.dispose()


def test_open_without_migrate_refuses_an_empty_database(store_url: str) -> None:
    with pytest.raises(SchemaNotReady, match="empty database"):
        FeedbackStore.open(store_url, migrate=False)
    migrate(store_url)
    with FeedbackStore.open(store_url, migrate=False) as store:
        assert store.counts().feedback_without_proposal == 0


def test_concurrent_opens_migrate_once(store_url: str) -> None:
    opened: list[FeedbackStore] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def open_store() -> None:
        barrier.wait(timeout=30)
        try:
            opened.append(FeedbackStore.open(store_url))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for store in opened:
        store.close()
    assert errors == [] and len(opened) == 4


# proposals and feedback -----------------------------------------------------------------------


def test_proposal_insert_is_idempotent_and_round_trips(store: FeedbackStore) -> None:
    proposal = proposal_for(state())
    assert store.record_proposal(proposal) is True
    redelivered = proposal.model_copy(update={"critic_score": 0.99})
    assert store.record_proposal(redelivered) is False
    assert store.proposal(proposal.proposal_id) == proposal  # the first write stays
    executed = executed_proposal(state(version=4))
    assert store.record_proposal(executed) is True
    assert store.proposal(executed.proposal_id) == executed
    assert store.proposal("missing") is None


def test_feedback_insert_is_idempotent_and_keeps_every_field(store: FeedbackStore) -> None:
    item = answer(proposal_for(state()), Verdict.corrected, operator_action=ESCALATE)
    assert store.record_feedback(item) is True
    assert store.record_feedback(item) is False
    assert store.record_feedback(item.model_copy(update={"verdict": Verdict.accepted})) is False
    [stored] = store.feedback_with_context()
    assert stored.feedback == item
    assert stored.received_at.utcoffset() == timedelta(0)


def test_bulk_inserts_are_idempotent_and_join_like_single_ones(store: FeedbackStore) -> None:
    proposals = [proposal_for(state(f"s{i}")) for i in range(5)]
    answers = [answer(p, Verdict.accepted, given_at=T0 + timedelta(minutes=i)) for i, p in enumerate(proposals)]
    store.record_proposal(proposals[0])
    store.record_proposals(proposals)
    store.record_feedbacks(answers[:2])
    store.record_feedbacks(answers)
    store.record_feedbacks([])
    rows = store.feedback_with_context()
    assert [row.feedback for row in rows] == answers
    assert [row.context for row in rows] == proposals


def test_feedback_joins_its_proposal_and_keeps_orphans(store: FeedbackStore) -> None:
    known = proposal_for(state("s1"))
    other_cluster = proposal_for(state("s2", cluster="us"))
    store.record_proposal(known)
    store.record_proposal(other_cluster)
    store.record_proposal(proposal_for(state("s3")))  # never answered
    first = answer(known, Verdict.accepted, given_at=T0 + timedelta(minutes=1))
    orphan = answer(None, Verdict.corrected, given_at=T0 + timedelta(minutes=2))
    unlinked = answer(None, Verdict.acceptable_alternative, deferral_id=None, given_at=T0 + timedelta(minutes=3))
    us = answer(other_cluster, Verdict.corrected, given_at=T0 + timedelta(minutes=4))
    for item in (us, unlinked, orphan, first):
        store.record_feedback(item)

    rows = store.feedback_with_context()
    assert [row.feedback.feedback_id for row in rows] == [item.feedback_id for item in (first, orphan, unlinked, us)]
    assert rows[0].context == known
    assert rows[1].context is None and rows[2].context is None
    assert rows[3].context == other_cluster

    assert [row.feedback for row in store.feedback_with_context(cluster="us")] == [us]
    assert store.feedback_with_context(process_id="elsewhere") == []
    later = store.feedback_with_context(process_id="returns", since=T0 + timedelta(minutes=2))
    assert [row.feedback for row in later] == [orphan, unlinked, us]


def test_counts_feedback_by_verdict_and_proposals_by_outcome(store: FeedbackStore) -> None:
    empty = store.counts()
    assert set(empty.feedback_by_verdict.values()) == {0} and len(empty.feedback_by_verdict) == len(Verdict)
    deferred = [proposal_for(state(f"s{i}")) for i in range(3)]
    for proposal in [*deferred, executed_proposal(state("s9"))]:
        store.record_proposal(proposal)
    store.record_feedback(answer(deferred[0], Verdict.accepted))
    store.record_feedback(answer(deferred[1], Verdict.acceptable_alternative))
    store.record_feedback(answer(deferred[2], Verdict.acceptable_alternative))
    store.record_feedback(answer(None, Verdict.corrected))

    counts = store.counts()
    assert counts.feedback_by_verdict == {
        Verdict.accepted: 1,
        Verdict.corrected: 1,
        Verdict.acceptable_alternative: 2,
    }
    assert counts.proposals_by_outcome == {ProposalOutcome.deferred: 3, ProposalOutcome.executed: 1}
    assert counts.feedback_without_proposal == 1
    assert sum(store.counts(process_id="elsewhere").feedback_by_verdict.values()) == 0


# applied actions ------------------------------------------------------------------------------


def test_claim_then_mark_applied(store: FeedbackStore) -> None:
    assert store.was_applied("a1") is False
    assert store.claim_action("a1", "s1", "issue_refund") is True
    assert store.claim_action("a1", "s1", "issue_refund") is False  # redelivered
    assert store.was_applied("a1") is False  # claimed, not applied yet
    store.mark_action("a1", ActionStatus.applied, "BPM task 881 completed")
    assert store.was_applied("a1") is True
    stored = store.applied_action("a1")
    assert stored is not None and stored.detail == "BPM task 881 completed" and stored.applied_at is not None

    assert store.claim_action("a2", "s1", "escalate") is True
    store.mark_action("a2", ActionStatus.failed, "BPM said 409")
    assert store.was_applied("a2") is False
    assert store.claim_action("a2", "s1", "escalate") is False  # never retried automatically
    with pytest.raises(UnknownAction):
        store.mark_action("never-claimed", ActionStatus.applied)
    with pytest.raises(ValueError):
        store.mark_action("a1", ActionStatus.claimed)


def test_claim_is_atomic_across_threads(store_url: str) -> None:
    migrate(store_url)
    racers = 8
    stores = [FeedbackStore.open(store_url, migrate=False) for _ in range(racers)]
    barrier = threading.Barrier(racers)
    wins: list[bool] = []
    lock = threading.Lock()

    def race(own: FeedbackStore) -> None:
        barrier.wait(timeout=30)
        won = own.claim_action("contended", "s1", "issue_refund")
        with lock:
            wins.append(won)

    threads = [threading.Thread(target=race, args=(own,)) for own in stores]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        for own in stores:
            own.close()
    assert sorted(wins) == [False] * (racers - 1) + [True]


def test_claim_is_atomic_across_processes(store_url: str) -> None:
    migrate(store_url)
    racers = 4
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(racers)
    results = context.Queue()
    processes = [
        context.Process(target=claim_in_process, args=(store_url, "contended", barrier, results)) for _ in range(racers)
    ]
    for process in processes:
        process.start()
    wins = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    assert sorted(wins) == [False] * (racers - 1) + [True]


# stages ---------------------------------------------------------------------------------------


def test_stage_history_is_ordered_and_has_a_latest(store: FeedbackStore) -> None:
    assert store.latest_stage("returns", "eu") is None
    assert store.stage_history("returns", "eu") == []
    store.record_stage_transition("returns", "eu", Stage.logging, reason="new process", at=T0)
    store.record_stage_transition("returns", "us", Stage.copilot, at=T0 + timedelta(hours=1))
    store.record_stage_transition("returns", "eu", Stage.copilot, reason="policy trained", at=T0 + timedelta(days=1))
    last = store.record_stage_transition("returns", "eu", Stage.selective, reason="critic certified")

    history = store.stage_history("returns", "eu")
    assert [(t.from_stage, t.to_stage) for t in history] == [
        (None, Stage.logging),
        (Stage.logging, Stage.copilot),
        (Stage.copilot, Stage.selective),
    ]
    assert [t.reason for t in history] == ["new process", "policy trained", "critic certified"]
    assert history[-1] == last
    assert store.latest_stage("returns", "eu") is Stage.selective
    assert store.latest_stage("returns", "us") is Stage.copilot


def test_hand_controls_keep_who_when_and_why(store: FeedbackStore) -> None:
    store.record_stage_transition("returns", "eu", Stage.selective, reason="certified", at=T0)
    moved = store.record_stage_transition(
        "returns",
        "eu",
        Stage.copilot,
        reason="set by hand by alice: incident",
        at=T0 + timedelta(hours=1),
        changed_by="alice",
    )
    assert [t.changed_by for t in store.stage_history("returns", "eu")] == [None, "alice"]  # None: the loop
    assert moved.from_stage is Stage.selective
    store.record_hand_control(
        "returns", "eu", HandControl.stage, reason="incident", changed_by="alice", stage=Stage.copilot, at=T0
    )
    store.record_hand_control(
        "returns", "*", HandControl.pause, reason="outage", changed_by="bob", at=T0 + timedelta(1)
    )
    store.record_hand_control("other", "*", HandControl.pause, reason="elsewhere", changed_by="bob", at=T0)
    last = store.record_hand_control("returns", "*", HandControl.resume, reason="fixed", changed_by="bob")
    history = store.hand_controls("returns")
    assert [(h.control, h.scope, h.stage, h.changed_by) for h in history] == [
        (HandControl.stage, "eu", Stage.copilot, "alice"),
        (HandControl.pause, "*", None, "bob"),
        (HandControl.resume, "*", None, "bob"),
    ]
    assert history[-1] == last and store.hand_controls("returns", newest=1) == [last]


# model versions -------------------------------------------------------------------------------


def test_model_version_promotion(store: FeedbackStore) -> None:
    assert store.promoted_version(ModelKind.critic, "returns") is None
    first = store.record_model_version(
        ModelKind.critic, "returns", "c1", Path("/models/returns/critic/c1"), {"auc": 0.81, "n": 400}, promoted=True
    )
    assert first.promoted and first.metrics == {"auc": 0.81, "n": 400}
    second = store.record_model_version(ModelKind.critic, "returns", "c2", "/models/returns/critic/c2", {"auc": 0.86})
    assert not second.promoted
    assert store.promoted_version(ModelKind.critic, "returns") == first
    again = store.record_model_version(ModelKind.critic, "returns", "c2", "/elsewhere", {"auc": 0.1})
    assert again == second  # idempotent: the first registration stays

    promoted = store.promote(ModelKind.critic, "returns", "c2")
    assert promoted.promoted and promoted.promoted_at is not None
    assert store.promoted_version(ModelKind.critic, "returns") == promoted
    assert [(v.version, v.promoted) for v in store.model_versions(ModelKind.critic, "returns")] == [
        ("c1", False),
        ("c2", True),
    ]
    assert store.promote(ModelKind.critic, "returns", "c2") == promoted  # promoting twice changes nothing
    assert store.promoted_version(ModelKind.policy, "returns") is None  # kinds are independent

    with pytest.raises(UnknownModelVersion):
        store.promote(ModelKind.critic, "returns", "c9")
    assert store.promoted_version(ModelKind.critic, "returns") == promoted  # the failed promotion rolled back


def test_database_refuses_two_promoted_versions(store: FeedbackStore) -> None:
    store.record_model_version(ModelKind.policy, "returns", "p1", "/p1", promoted=True)
    store.record_model_version(ModelKind.policy, "returns", "p2", "/p2")
    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as connection:
        connection.execute(sa.text("UPDATE model_versions SET promoted = :yes WHERE version = 'p2'"), {"yes": True})


# changes made by hand -------------------------------------------------------------------------


def test_service_changes_are_appended_and_read_back_oldest_first(store: FeedbackStore) -> None:
    added = store.record_service_change(
        "returns", ServiceChangeKind.process_added, revision=1, changed_by="ada", reason="new line of work", at=T0
    )
    deployed = store.record_service_change(
        "returns",
        ServiceChangeKind.deployed,
        revision=2,
        changed_by="grace",
        policy="p1",
        reason="first policy",
        detail="eu: logging -> copilot",
        at=T0 + timedelta(hours=1),
    )
    store.record_service_change("other", ServiceChangeKind.process_added, revision=1, changed_by="ada")
    assert store.service_changes("returns") == [added, deployed]
    assert deployed.policy == "p1" and deployed.critic is None and deployed.at == T0 + timedelta(hours=1)
    assert [c.changed_by for c in store.service_changes("other")] == ["ada"]


# datasets from stored rows --------------------------------------------------------------------


def test_datasets_from_the_store_keep_graded_verdicts(store: FeedbackStore) -> None:
    proposals = [proposal_for(state(f"s{i}", version=i + 1)) for i in range(3)]
    for proposal in proposals:
        store.record_proposal(proposal)
    minutes = [T0 + timedelta(minutes=m) for m in range(4)]
    answers = [
        answer(proposals[0], Verdict.accepted, given_at=minutes[0]),
        answer(proposals[1], Verdict.acceptable_alternative, operator_action=REFUND, given_at=minutes[1]),
        answer(proposals[2], Verdict.corrected, operator_action=ESCALATE, given_at=minutes[2]),
        answer(None, Verdict.corrected, given_at=minutes[3]),  # no recorded state: no example
    ]
    for item in answers:
        store.record_feedback(item)

    rows = store.feedback_with_context()
    critic = critic_examples(rows)
    assert [(e.verdict, e.label) for e in critic] == [
        (Verdict.accepted, True),
        (Verdict.acceptable_alternative, True),
        (Verdict.corrected, False),
    ]
    assert [e.step_index for e in critic] == [1, 2, 3]
    assert all(e.action == LOOKUP and e.event == p.event for e, p in zip(critic, proposals, strict=True))
    assert critic[0].signals.rank == 0 and critic[0].signals.probability == pytest.approx(0.7)
    assert verdict_counts(critic)[Verdict.acceptable_alternative] == 1

    policy = policy_examples(rows)
    assert [(e.verdict, e.action) for e in policy] == [
        (Verdict.accepted, LOOKUP),
        (Verdict.acceptable_alternative, REFUND),
        (Verdict.corrected, ESCALATE),
    ]


def test_the_newest_window_is_the_newest_records_oldest_first(store: FeedbackStore) -> None:
    proposals = [proposal_for(state(f"s{i}", version=i + 1)) for i in range(5)]
    for proposal in proposals:
        store.record_proposal(proposal)
    for minute, proposal in enumerate(proposals):
        store.record_feedback(answer(proposal, Verdict.accepted, given_at=T0 + timedelta(minutes=minute)))
    window = store.feedback_with_context(process_id="returns", newest=3)
    assert [row.feedback.session_id for row in window] == ["s2", "s3", "s4"]
    assert all(row.context is not None for row in window)
    assert len(store.feedback_with_context(process_id="returns")) == 5


def test_judged_unattended_steps_are_audits_and_exploration_answers(store: FeedbackStore) -> None:
    explored = proposal_for(
        state("s1", 1), reason=DeferralReason.exploration, stage=Stage.copilot, inclusion_probability=0.05
    )
    deferred = proposal_for(state("s2", 1))
    executed = executed_proposal(state("s3", 1))
    for proposal in (explored, deferred):
        store.record_proposal(proposal)
    store.record_feedback(
        answer(explored, Verdict.accepted, given_at=T0 + timedelta(minutes=1)), received_at=T0 + timedelta(minutes=1)
    )
    store.record_feedback(
        answer(deferred, Verdict.corrected, given_at=T0 + timedelta(minutes=2)), received_at=T0 + timedelta(minutes=2)
    )
    audit = answer(
        None,
        Verdict.corrected,
        deferral_id=None,
        suggestion=executed.suggestion,
        suggestion_action_id=executed.proposal_id,
        inclusion_probability=0.04,
        given_at=T0 + timedelta(minutes=3),
    )
    store.record_feedback(audit, received_at=T0 + timedelta(minutes=3))
    judged = store.judged_unattended("returns")
    assert judged[1].feedback_id == audit.feedback_id
    assert [(j.audit, j.verdict, j.inclusion_probability) for j in judged] == [
        (False, Verdict.accepted, 0.05),
        (True, Verdict.corrected, 0.04),
    ]
    assert store.judged_unattended("returns", since=T0 + timedelta(minutes=2)) == judged[1:]


def test_judged_unattended_follows_the_time_answers_reached_the_store(store: FeedbackStore) -> None:
    # An answer given (in platform time) before the cluster went selective but received after it
    # is evidence about the selective period: the monitor must see it, in arrival order.
    explored = proposal_for(
        state("s1", 1), reason=DeferralReason.exploration, stage=Stage.copilot, inclusion_probability=0.05
    )
    store.record_proposal(explored)
    executed = executed_proposal(state("s3", 1))
    late = answer(
        None,
        Verdict.accepted,
        deferral_id=None,
        suggestion=executed.suggestion,
        suggestion_action_id=executed.proposal_id,
        inclusion_probability=0.04,
        given_at=T0,
    )
    store.record_feedback(late, received_at=T0 + timedelta(hours=2))
    store.record_feedback(
        answer(explored, Verdict.corrected, given_at=T0 + timedelta(minutes=5)), received_at=T0 + timedelta(hours=1)
    )
    judged = store.judged_unattended("returns", since=T0 + timedelta(hours=1))
    assert [(j.audit, j.received_at) for j in judged] == [
        (False, T0 + timedelta(hours=1)),
        (True, T0 + timedelta(hours=2)),
    ]
    assert store.judged_unattended("returns", since=T0 + timedelta(hours=3)) == []
