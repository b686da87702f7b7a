"""The console in headless Chromium against the real broker: sign in, watch deferrals arrive live
(server-sent events, no reload), accept one with the keyboard, correct another through the form,
and find the operator's records on the topics. Saves docs/console-inbox.png with UPDATE_SCREENSHOTS=1.

Needs Debian's chromium at /usr/bin/chromium and the playwright package (never `playwright install`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from pydantic import SecretStr

from selective_autonomy.config import ConsoleSettings, Settings
from selective_autonomy.console.app import create_app
from selective_autonomy.inference.registry import ModelRegistry, ServicePointer
from selective_autonomy.schemas.event_parts import (
    Action,
    ActionTier,
    ChatTurn,
    DeferralReason,
    Executor,
    Speaker,
    Stage,
    UIState,
    Verdict,
)
from selective_autonomy.schemas.events import (
    ActionExecuted,
    CopilotFeedback,
    EventModel,
    OperatorDeferral,
    action_id_for,
)
from selective_autonomy.streams.consumer import EventConsumer, Received
from selective_autonomy.streams.producer import EventProducer
from tests.factories import HELPDESK as SCHEMA
from tests.factories import tier_of
from tests.integration.console_support import CHROMIUM, LAUNCH_ARGS, Server

DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "console-inbox.png"
UPDATE_SCREENSHOT = os.environ.get("UPDATE_SCREENSHOTS") == "1"
"""The README's picture of the inbox is rewritten only on request: a test run leaves the tree clean."""

pytestmark = pytest.mark.integration

if not CHROMIUM.exists():
    pytest.skip(
        f"browser test skipped: no Chromium at {CHROMIUM} (install Debian's: apt-get install -y chromium)",
        allow_module_level=True,
    )

from playwright.sync_api import expect, sync_playwright  # noqa: E402 - only once Chromium is known to be there

NOW = datetime.now(UTC).replace(microsecond=0)
PEOPLE = [
    ("Grace Hopper", "grace.hopper@example.org"),
    ("Alan Turing", "alan.turing@example.org"),
    ("Katherine Johnson", "k.johnson@example.org"),
    ("Edsger Dijkstra", "e.dijkstra@example.org"),
]


def case(
    index: int,
    version: int,
    suggestion: Action | None,
    reason: DeferralReason,
    chat: list[tuple[Speaker, str]],
    critic: float | None,
    waited_s: int,
    cluster: str = "billing",
) -> OperatorDeferral:
    name, email = PEOPLE[index]
    session = f"c-{20931 + index * 7}"
    at = NOW - timedelta(seconds=waited_s)
    return OperatorDeferral(
        stage=Stage.selective,
        deferral_id=f"d-{session}-{version}",
        event_id=f"e-{session}-{version}",
        session_id=session,
        process_id="helpdesk",
        business_cluster=cluster,
        state_version=version,
        ui_state=UIState(
            fields={
                "customer_name": name,
                "email": email,
                "plan": ["pro", "basic", "business", "pro"][index],
                "open_invoices": index + 1,
            },
            chat_tail=[ChatTurn(speaker=speaker, text=text.format(name=name)) for speaker, text in chat],
            recent_actions=[Action(action_type="lookup_invoice", arguments={"invoice_id": f"INV-{4100 + index}"})],
            case_started_at=at - timedelta(minutes=6 + index),
        ),
        suggestion=suggestion,
        suggestion_action_id=action_id_for(session, version, suggestion) if suggestion else None,
        tier=tier_of(suggestion),
        policy_probability=None if critic is None else round(0.55 + critic / 3, 2),
        critic_score=critic,
        threshold=0.9 if suggestion else None,
        reason=reason,
        detail="" if suggestion else "policy unavailable: connection refused",
        policy_version="ngram-2026.03" if suggestion else None,
        critic_version="critic-7" if suggestion else None,
        deferred_at=at,
    )


DEFERRALS = [
    case(
        0,
        4,
        Action(action_type="lookup_invoice", arguments={"invoice_id": "INV-4187"}),
        DeferralReason.below_threshold,
        [(Speaker.customer, "Hi, this is {name}. I was charged twice for March."), (Speaker.bot, "Let me check.")],
        0.71,
        250,
    ),
    case(
        1,
        6,
        Action(action_type="issue_refund", arguments={"amount": 49.9, "reason": "duplicate", "notify": True}),
        DeferralReason.approval_required,
        [(Speaker.customer, "The second charge of 49.90 should be refunded."), (Speaker.operator, "Checking now.")],
        0.94,
        170,
    ),
    case(
        2,
        3,
        Action(action_type="send_text", arguments={"text": "Sorry Katherine Johnson, we are fixing the outage."}),
        DeferralReason.below_threshold,
        [(Speaker.customer, "Is the service down again? {name}, account owner.")],
        0.58,
        95,
        cluster="outage",
    ),
    case(
        3,
        2,
        None,
        DeferralReason.model_unavailable,
        [(Speaker.customer, "Can you move my plan to business?")],
        None,
        40,
    ),
]


def automated_steps(count: int, by_operators: int) -> list[ActionExecuted]:
    """Earlier steps of other sessions, so the header has something to count."""
    steps = []
    for i in range(count + by_operators):
        action = Action(action_type="lookup_invoice", arguments={"invoice_id": f"INV-{i}"})
        session = f"u-{i % 17}"
        steps.append(
            ActionExecuted(
                action_id=action_id_for(session, i, action),
                event_id=f"e{i}",
                session_id=session,
                process_id="helpdesk",
                business_cluster="billing" if i % 3 else "outage",
                state_version=i,
                action=action,
                tier=ActionTier.auto,
                executed_by=Executor.system if i < count else Executor.operator,
                operator_id=None if i < count else "bob",
                decided_at=NOW - timedelta(seconds=i * 20),
            )
        )
    return steps


E = TypeVar("E", bound=EventModel)


def events(records: list[Received[E]]) -> list[E]:
    assert all(r.event is not None for r in records), [r.error for r in records if r.error]
    return [r.event for r in records if r.event is not None]


@pytest.fixture
def console(settings: Settings, tmp_path: Path) -> Iterator[tuple[Server, Settings]]:
    registry = ModelRegistry(tmp_path / "models")
    registry.save_schema(SCHEMA)
    registry.publish("helpdesk", ServicePointer(stages={"billing": Stage.selective, "outage": Stage.copilot}))
    local = settings.model_copy(update={"models_dir": tmp_path / "models"})
    operators = ConsoleSettings(operators={"alice": SecretStr("alice-token-1")})
    with Server(create_app(local, console=operators)) as server:
        yield server, local


def test_operator_answers_live_deferrals_in_the_browser(console: tuple[Server, Settings], tmp_path: Path) -> None:
    server, settings = console
    topics = settings.topics
    # Anonymous requests are refused: 401 for the API and the stream, a redirect for the page.
    assert httpx.get(f"{server.url}/api/inbox").status_code == 401
    assert httpx.get(f"{server.url}/events").status_code == 401
    page_response = httpx.get(f"{server.url}/", follow_redirects=False)
    assert page_response.status_code == 303 and page_response.headers["location"].startswith("/login")
    with EventProducer(settings) as producer:
        for step in automated_steps(46, by_operators=6):
            producer.send(topics.actions_executed, step, key=step.session_id)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1100})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(server.url)
            assert "/login" in page.url
            page.fill("input[name=operator_id]", "alice")
            page.fill("input[name=token]", "alice-token-1")
            page.click("button[type=submit]")
            page.wait_for_selector("#live-status[data-state=live]")
            page.evaluate("window.__loadedOnce = true")

            # Deferrals produced now appear without a reload, oldest first.
            with EventProducer(settings) as producer:
                producer.send(topics.operator_deferrals, DEFERRALS[0], key=DEFERRALS[0].session_id)
            first = f'[data-card="{DEFERRALS[0].deferral_id}"]'
            page.wait_for_selector(first, timeout=15_000)
            with EventProducer(settings) as producer:
                for item in DEFERRALS[1:]:
                    producer.send(topics.operator_deferrals, item, key=item.session_id)
            cards = page.locator("#inbox > .card")
            expect(cards).to_have_count(4, timeout=15_000)
            assert page.evaluate("window.__loadedOnce") is True
            order = page.eval_on_selector_all("#inbox > .card", "cards => cards.map(c => c.dataset.card)")
            assert order == [d.deferral_id for d in DEFERRALS]
            html = page.content()
            for name, email in PEOPLE:
                assert name not in html and email not in html
            expect(page.locator("[data-counter=automated]")).to_have_text("46", timeout=15_000)
            screenshot = DOCS_SCREENSHOT if UPDATE_SCREENSHOT else tmp_path / "console-inbox.png"
            page.screenshot(path=str(screenshot), full_page=True, animations="disabled")
            assert screenshot.stat().st_size > 0

            # `a` accepts the focused (first) card.
            expect(page.locator(first)).to_be_focused()
            page.keyboard.press("a")
            page.wait_for_selector(first, state="detached", timeout=10_000)
            expect(page.locator("#toasts")).to_contain_text("Accepted: lookup_invoice", timeout=10_000)

            # Focus moves on to the next card; `j`/`k` move it; `c` opens the correction form.
            second = DEFERRALS[1].deferral_id
            expect(page.locator(f'[data-card="{second}"]')).to_be_focused()
            page.keyboard.press("j")
            expect(page.locator(f'[data-card="{DEFERRALS[2].deferral_id}"]')).to_be_focused()
            page.keyboard.press("k")
            expect(page.locator(f'[data-card="{second}"]')).to_be_focused()
            page.keyboard.press("c")
            form = f'[data-card="{second}"] form.answer-form'
            # htmx binds the select's change trigger only when the swap settles (it then drops
            # `htmx-added`); choosing an action before that would load no argument inputs.
            page.wait_for_selector(f"{form}:not(.htmx-added)")
            page.select_option(f"{form} select[name=action_type]", "set_priority")
            page.wait_for_selector(f"{form} input[name='arg.level']")
            page.fill(f"{form} input[name='arg.level']", "2")
            page.click(f"{form} button[type=submit]")
            page.wait_for_selector(f'[data-card="{second}"]', state="detached", timeout=10_000)
            expect(cards).to_have_count(2)
            expect(page.locator("[data-counter=waiting]")).to_have_text("2", timeout=10_000)
            assert errors == []
        finally:
            browser.close()

    with EventConsumer(settings, [topics.copilot_feedback], CopilotFeedback) as consumer:
        feedback = {e.session_id: e for e in events(consumer.take(2, timeout_s=20))}
    with EventConsumer(settings, [topics.actions_executed], ActionExecuted) as consumer:
        executed = events(consumer.take(46 + 6 + 2, timeout_s=20))
    executed = [e for e in executed if e.operator_id != "bob"]
    by_operator = {e.session_id: e for e in executed if e.executed_by is Executor.operator}
    accepted, corrected = feedback[DEFERRALS[0].session_id], feedback[DEFERRALS[1].session_id]
    assert accepted.verdict is Verdict.accepted and accepted.operator_id == "alice"
    assert corrected.verdict is Verdict.corrected and corrected.operator_id == "alice"
    priority = Action(action_type="set_priority", arguments={"level": 2})
    assert corrected.operator_action == priority
    assert DEFERRALS[0].suggestion is not None
    assert by_operator[DEFERRALS[0].session_id].action == DEFERRALS[0].suggestion
    assert by_operator[DEFERRALS[0].session_id].action_id == DEFERRALS[0].suggestion_action_id
    assert by_operator[DEFERRALS[1].session_id].action_id == action_id_for(
        DEFERRALS[1].session_id, DEFERRALS[1].state_version, priority
    )
    assert {e.operator_id for e in by_operator.values()} == {"alice"}
