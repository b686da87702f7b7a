"""The inbox rules: one card per session, newest version wins, later decisions remove cards,
answers claim cards, and the header counters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from selective_autonomy.console.inbox import ChangeKind, Inbox
from selective_autonomy.schemas.event_parts import Action, ActionTier, Executor, Verdict
from selective_autonomy.schemas.events import ActionExecuted, CopilotFeedback, action_id_for
from tests.factories import deferral

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
LOOKUP = Action(action_type="lookup_invoice", arguments={"invoice_id": "INV-1"})


class Clock:
    def __init__(self, at: datetime = NOW) -> None:
        self.now = at.timestamp()

    def __call__(self) -> float:
        return self.now


def executed(
    session: str, version: int, by: Executor = Executor.system, action: Action = LOOKUP, at: datetime = NOW
) -> ActionExecuted:
    return ActionExecuted(
        action_id=action_id_for(session, version, action),
        event_id="e",
        session_id=session,
        process_id="helpdesk",
        business_cluster="billing",
        state_version=version,
        action=action,
        tier=ActionTier.auto,
        executed_by=by,
        operator_id="bob" if by is Executor.operator else None,
        decided_at=at,
    )


def test_cards_are_oldest_first_across_sessions() -> None:
    inbox = Inbox(clock=Clock())
    inbox.on_deferral(deferral("s2", 1, at=NOW - timedelta(minutes=1)))
    inbox.on_deferral(deferral("s1", 4, at=NOW - timedelta(minutes=5)))
    inbox.on_deferral(deferral("s3", 2, at=NOW))
    assert [c.session_id for c in inbox.cards()] == ["s1", "s2", "s3"]


def test_newer_state_supersedes_and_keeps_the_place_in_line() -> None:
    inbox = Inbox(clock=Clock())
    inbox.on_deferral(deferral("s1", 3, at=NOW - timedelta(minutes=5)))
    inbox.on_deferral(deferral("s2", 1, at=NOW - timedelta(minutes=2)))
    changes = inbox.on_deferral(deferral("s1", 4, at=NOW))
    assert [(c.kind, c.card_id) for c in changes] == [(ChangeKind.remove, "d-s1-3"), (ChangeKind.upsert, "d-s1-4")]
    assert [c.id for c in inbox.cards()] == ["d-s1-4", "d-s2-1"]
    # An older or repeated version changes nothing.
    assert inbox.on_deferral(deferral("s1", 3)) == []
    assert inbox.on_deferral(deferral("s1", 4)) == []
    assert inbox.get("d-s1-3") is None


def test_a_later_decision_or_an_answer_removes_the_card() -> None:
    inbox = Inbox(clock=Clock())
    inbox.on_deferral(deferral("s1", 3))
    inbox.on_deferral(deferral("s2", 3))
    assert inbox.on_executed(executed("s1", 2)) == []  # older than the card: it stays
    assert [c.kind for c in inbox.on_executed(executed("s1", 5))] == [ChangeKind.remove]
    feedback = CopilotFeedback(
        session_id="s2",
        process_id="helpdesk",
        business_cluster="billing",
        state_version=3,
        suggestion=LOOKUP,
        verdict=Verdict.accepted,
        operator_id="carol",
        latency_ms=10,
    )
    assert [c.card_id for c in inbox.on_feedback(feedback)] == ["d-s2-3"]
    assert inbox.cards() == []
    # The deferral of a state the session has already left is ignored when read late.
    assert inbox.on_deferral(deferral("s1", 4)) == []
    assert inbox.on_deferral(deferral("s1", 6)) != []


def test_claim_complete_and_release() -> None:
    inbox = Inbox(clock=Clock())
    inbox.on_deferral(deferral("s1", 3))
    card = inbox.claim("d-s1-3")
    assert card is not None and inbox.claim("d-s1-3") is None
    assert inbox.on_deferral(deferral("s1", 3)) == []  # redelivered while being answered
    inbox.release(card)
    assert inbox.get("d-s1-3") is not None
    card = inbox.claim("d-s1-3")
    assert card is not None
    inbox.complete(card, executed("s1", 3, Executor.operator))
    assert inbox.on_deferral(deferral("s1", 3)) == []
    assert inbox.counts().operator_today == 1


def test_release_does_not_resurrect_a_card_whose_session_moved_on() -> None:
    inbox = Inbox(clock=Clock())
    inbox.on_deferral(deferral("s1", 3))
    card = inbox.claim("d-s1-3")
    assert card is not None
    inbox.on_deferral(deferral("s1", 4))
    inbox.release(card)
    assert [c.id for c in inbox.cards()] == ["d-s1-4"]


def test_visibility_limits_cards_claims_and_counts() -> None:
    inbox = Inbox(clock=Clock())
    inbox.on_deferral(deferral("s1", 1))
    inbox.on_deferral(deferral("s2", 1, process="onboarding"))
    only_helpdesk = frozenset({"helpdesk"})
    assert [c.session_id for c in inbox.cards(only_helpdesk)] == ["s1"]
    assert inbox.claim("d-s2-1", only_helpdesk) is None
    assert inbox.counts(only_helpdesk).waiting == 1
    assert inbox.counts().waiting == 2


def test_counters_unattended_automated_and_rate() -> None:
    clock = Clock()
    inbox = Inbox(clock=clock, active_window_s=600)
    for i in range(6):
        inbox.on_executed(executed(f"a{i}", 1))
    inbox.on_executed(executed("a0", 1))  # redelivered: counted once
    inbox.on_executed(executed("a1", 2, action=Action(action_type="close_chat")))  # ended
    inbox.on_executed(executed("old", 1, at=NOW - timedelta(hours=1)))  # idle: not running
    inbox.on_executed(executed("yesterday", 1, at=NOW - timedelta(days=1)))
    inbox.on_deferral(deferral("a2", 2, at=NOW))  # waiting, not unattended
    inbox.on_executed(executed("b1", 1, Executor.operator))
    counts = inbox.counts()
    assert counts.unattended_sessions == 5  # a0, a3, a4, a5, and b1 resumed after its operator step
    assert counts.waiting == 1
    assert counts.automated_today == 8  # 6 + close_chat + the idle one, all today
    assert counts.operator_today == 1
    assert counts.deferred_today == 1
    assert counts.automation_rate is not None and abs(counts.automation_rate - 8 / 9) < 1e-9
    clock.now += 3600
    assert inbox.counts().unattended_sessions == 0


def test_listeners_get_changes_in_order() -> None:
    inbox = Inbox(clock=Clock())
    seen: list[str] = []
    inbox.subscribe(lambda changes: seen.extend(f"{c.kind.value}:{c.card_id}" for c in changes))
    inbox.on_deferral(deferral("s1", 1))
    inbox.claim("d-s1-1")
    assert seen == ["upsert:d-s1-1", "remove:d-s1-1"]


def test_progress_memory_is_bounded() -> None:
    inbox = Inbox(clock=Clock(), max_sessions=100)
    for i in range(250):
        inbox.on_executed(executed(f"s{i}", 1))
    assert len(inbox._progress) == 100 and len(inbox._activity) == 100 and len(inbox._recent_ids) == 200


def test_counts_may_be_shared_for_a_moment() -> None:
    clock = Clock()
    inbox = Inbox(clock=clock)
    assert inbox.counts(max_age_s=1.0).waiting == 0
    inbox.on_deferral(deferral("s1", 1))
    assert inbox.counts(max_age_s=1.0).waiting == 0  # the live stream's shared, second-old result
    assert inbox.counts().waiting == 1  # API readers always get a fresh one
    clock.now += 1.5
    assert inbox.counts(max_age_s=1.0).waiting == 1
