"""The pending audits: the systematic sample per partition, removal by audit feedback from anywhere, no return
after an answer, duplicates, the bound, visibility, claims; the feed routes records to the book."""

from __future__ import annotations

import hashlib
import math
from datetime import timedelta

import pytest
from pydantic import ValidationError

from selective_autonomy.config import ConsoleSettings, Settings
from selective_autonomy.console.audits import AuditBook
from selective_autonomy.console.feed import KafkaInboxFeed
from selective_autonomy.console.inbox import ChangeKind, Inbox
from selective_autonomy.schemas.event_parts import Action, Executor, Verdict
from selective_autonomy.schemas.events import CopilotFeedback, EventModel
from selective_autonomy.schemas.sampling import SystematicSample, audit_start, systematic_pick
from selective_autonomy.streams.serialization import AvroCodec
from tests.factories import INVOICE_LOOKUP as LOOKUP
from tests.factories import RECENT as T0
from tests.factories import step


class Clock:
    def __init__(self) -> None:
        self.now = T0.timestamp()

    def __call__(self) -> float:
        return self.now


def audit_of(action_id: str, session: str = "u1", version: int = 2, deferral_id: str | None = None) -> CopilotFeedback:
    return CopilotFeedback(
        deferral_id=deferral_id,
        session_id=session,
        process_id="helpdesk",
        business_cluster="billing",
        state_version=version,
        suggestion=LOOKUP,
        suggestion_action_id=action_id,
        verdict=Verdict.accepted,
        operator_id="carol",
        latency_ms=5,
    )


def ids(book: AuditBook, visibility: frozenset[str] | None = None) -> list[str]:
    return [audit.session_id for audit in book.pending(visibility)]


# -- sampling ---------------------------------------------------------------------------------------


def test_every_position_is_picked_with_probability_rate_and_n_steps_hold_n_rate_rounded() -> None:
    rate, starts = 0.04, [i / 10_000 for i in range(10_000)]  # the start, uniform on a fine grid
    for position in (0, 1, 7, 24, 25, 26, 999):
        share = sum(systematic_pick(u, position, rate) for u in starts) / len(starts)
        assert share == pytest.approx(rate, abs=1e-4)
    for u in (0.0, 0.31, 0.99):
        for n in (1, 25, 145, 254, 1000):
            picked = sum(systematic_pick(u, k, rate) for k in range(n))
            assert picked == math.floor(u + n * rate)
            assert math.floor(n * rate) <= picked <= math.ceil(n * rate)
    # The start of a scope is a fixed function of its name.
    expected = int(hashlib.sha256(b"audit\x1factions.executed[3]").hexdigest()[:8], 16) / 2**32
    assert audit_start("actions.executed[3]") == expected


def test_two_books_reading_a_partition_in_order_offer_the_same_share_of_its_steps() -> None:
    steps = [step(f"s{i}", i % 7) for i in range(400)]
    first, second = AuditBook(rate=0.2, max_pending=1000), AuditBook(rate=0.2, max_pending=1000)
    for item in steps:
        first.on_executed(item, scope="actions.executed[0]")
    for item in steps:
        second.on_executed(item, scope="actions.executed[0]")
        second.on_executed(item, scope="actions.executed[0]")  # a redelivery keeps the first answer
    assert {a.id for a in first.pending()} == {a.id for a in second.pending()}
    assert first.count() == 80 and all(a.inclusion_probability == 0.2 for a in first.pending())
    # Operators' executions are never offered and do not move the sample.
    mixed = AuditBook(rate=0.2, max_pending=1000)
    for item in steps:
        mixed.on_executed(step("op-" + item.session_id, by=Executor.operator), scope="actions.executed[0]")
        mixed.on_executed(item, scope="actions.executed[0]")
    assert {a.id for a in mixed.pending()} == {a.id for a in first.pending()}


def test_scopes_are_sampled_apart() -> None:
    sample = SystematicSample(0.25)
    picks = {scope: [sample.picks(scope, f"{scope}/{i}") for i in range(100)] for scope in ("p0", "p1")}
    assert sum(picks["p0"]) == sum(picks["p1"]) == 25
    assert picks["p0"] != picks["p1"]  # another start


def test_rate_zero_offers_nothing_and_rate_one_everything() -> None:
    steps = [step(f"s{i}", 1) for i in range(200)]
    assert not any(systematic_pick(0.5, k, 0.0) for k in range(200))
    assert all(systematic_pick(0.5, k, 1.0) for k in range(200))
    none, every = AuditBook(rate=0.0), AuditBook(rate=1.0, max_pending=1000)
    for item in steps:
        assert none.on_executed(item) == []
        every.on_executed(item)
    assert none.count() == 0 and every.count() == 200
    with pytest.raises(ValueError, match="rate"):
        SystematicSample(1.5)


def test_only_steps_the_system_executed_are_offered() -> None:
    book = AuditBook(rate=1.0)
    assert book.on_executed(step("u1", by=Executor.operator)) == []
    changes = book.on_executed(step("u2"))
    assert [(c.kind, c.session_id) for c in changes] == [(ChangeKind.upsert, "u2")]
    assert ids(book) == ["u2"]


def test_settings_bound_the_rate() -> None:
    assert ConsoleSettings().audit_rate == 0.05 and ConsoleSettings().max_pending_audits == 500
    for bad in ({"audit_rate": 1.5}, {"audit_rate": -0.1}, {"max_pending_audits": 0}):
        with pytest.raises(ValidationError):
            ConsoleSettings(**bad)  # type: ignore[arg-type]


# -- rules ------------------------------------------------------------------------------------------


def test_audit_feedback_from_anywhere_removes_the_audit_and_it_never_comes_back() -> None:
    book = AuditBook(rate=1.0)
    first, second = step("u1"), step("u2")
    book.on_executed(first)
    book.on_executed(second)
    # A deferral answer naming the same action is no audit: nothing changes.
    assert book.on_feedback(audit_of(first.action_id, deferral_id="d-u1-2")) == []
    changes = book.on_feedback(audit_of(first.action_id))
    assert [(c.kind, c.action_id) for c in changes] == [(ChangeKind.remove, first.action_id)]
    assert ids(book) == ["u2"]
    # Replaying the topics from the start reads the executed record again: it stays answered.
    assert book.on_executed(first) == []
    assert ids(book) == ["u2"]


def test_feedback_read_before_the_step_keeps_it_out() -> None:
    book = AuditBook(rate=1.0)
    item = step("u1")
    assert book.on_feedback(audit_of(item.action_id)) == []
    assert book.on_executed(item) == [] and book.count() == 0


def test_duplicates_are_ignored_pending_or_being_answered() -> None:
    book = AuditBook(rate=1.0)
    item = step("u1")
    book.on_executed(item)
    assert book.on_executed(item) == []
    assert book.count() == 1
    claimed = book.claim(item.action_id)
    assert claimed is not None
    assert book.on_executed(item) == []  # redelivered while being answered
    assert book.count() == 0


def test_beyond_the_bound_the_oldest_are_dropped() -> None:
    clock = Clock()
    book = AuditBook(rate=1.0, max_pending=3, clock=clock)
    removed: list[str] = []
    book.subscribe(lambda changes: removed.extend(c.session_id for c in changes if c.kind is ChangeKind.remove))
    for i in range(5):
        clock.now += 1
        book.on_executed(step(f"u{i}"))
    assert ids(book) == ["u2", "u3", "u4"]
    assert removed == ["u0", "u1"]


def test_answered_ids_are_remembered_within_a_bound() -> None:
    book = AuditBook(rate=1.0, max_answered=100)
    for i in range(150):
        book.on_feedback(audit_of(step(f"u{i}").action_id, session=f"u{i}"))
    assert len(book._answered) == 100
    assert book.on_executed(step("u0")) != []  # forgotten: offered again
    assert book.on_executed(step("u149")) == []


def test_visibility_limits_what_is_listed_counted_got_and_claimed() -> None:
    book = AuditBook(rate=1.0)
    book.on_executed(step("u1"))
    other = step("u2", process="onboarding")
    book.on_executed(other)
    onboarding = frozenset({"onboarding"})
    assert ids(book, onboarding) == ["u2"] and book.count(onboarding) == 1
    assert ids(book) == ["u1", "u2"] and book.count() == 2
    assert book.get(step("u1").action_id, onboarding) is None
    assert book.claim(step("u1").action_id, onboarding) is None
    assert book.claim(other.action_id, onboarding) is not None


def test_claim_complete_and_release() -> None:
    clock = Clock()
    book = AuditBook(rate=1.0, clock=clock)
    seen: list[str] = []
    book.subscribe(lambda changes: seen.extend(f"{c.kind.value}:{c.session_id}" for c in changes))
    for i in range(3):
        clock.now += 1
        book.on_executed(step(f"u{i}"))
    first = book.claim(step("u0").action_id)
    assert first is not None and book.claim(first.id) is None
    assert ids(book) == ["u1", "u2"]
    book.release(first)  # delivery failed: back in its place, oldest first
    assert ids(book) == ["u0", "u1", "u2"]
    assert first.arrived_at == T0.timestamp() + 1
    again = book.claim(first.id)
    assert again is not None
    revision = book.revision
    book.complete(again)
    assert book.revision > revision
    assert book.on_executed(step("u0")) == [] and ids(book) == ["u1", "u2"]
    assert seen == ["upsert:u0", "upsert:u1", "upsert:u2", "remove:u0", "upsert:u0", "remove:u0"]


def test_release_does_not_bring_back_an_audit_answered_meanwhile() -> None:
    book = AuditBook(rate=1.0)
    item = step("u1")
    book.on_executed(item)
    claimed = book.claim(item.action_id)
    assert claimed is not None
    book.on_feedback(audit_of(item.action_id))  # another replica's answer (or ours, read back)
    book.release(claimed)
    assert book.count() == 0


# -- the feed ---------------------------------------------------------------------------------------


class FakeMessage:
    def __init__(self, topic: str, value: bytes, headers: list[tuple[str, bytes]] | None = None) -> None:
        self._topic, self._value, self._headers = topic, value, headers

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self._topic

    def value(self) -> bytes:
        return self._value

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 0


def test_the_feed_routes_executed_steps_and_feedback_to_the_book() -> None:
    settings = Settings()
    inbox, book = Inbox(), AuditBook(rate=1.0)
    feed = KafkaInboxFeed(settings, inbox, audits=book)
    codec = AvroCodec(settings.wire_format)
    topics = settings.topics

    def handle(topic: str, event: EventModel, headers: list[tuple[str, bytes]] | None = None) -> None:
        feed._handle(FakeMessage(topic, codec.encode(event, topic), headers))  # type: ignore[arg-type]

    item = step("u1", at=T0 - timedelta(minutes=1))
    handle(topics.actions_executed, item, [("traceparent", b"00-abc-def-01")])
    pending = book.pending()
    assert [a.id for a in pending] == [item.action_id] and pending[0].headers == (("traceparent", b"00-abc-def-01"),)
    assert "u1" in inbox._activity  # the inbox still got it
    handle(topics.copilot_feedback, audit_of(item.action_id))
    assert book.count() == 0
    handle(topics.actions_executed, item)
    assert book.count() == 0
    # Without a book the feed fills the inbox only, as before.
    plain = KafkaInboxFeed(settings, Inbox())
    plain._handle(FakeMessage(topics.actions_executed, codec.encode(step("u2"), topics.actions_executed)))  # type: ignore[arg-type]
    assert plain.records == 1


def test_an_action_is_never_offered_twice_across_versions() -> None:
    # Same session, other states: distinct steps, each judged on its own.
    book = AuditBook(rate=1.0)
    book.on_executed(step("u1", 1))
    book.on_executed(step("u1", 2))
    book.on_executed(step("u1", 2, action=Action(action_type="set_priority", arguments={"level": 1})))
    assert [a.state_version for a in book.pending()] == [1, 2, 2]
