"""Audits in the console on the real broker: unattended steps on ``actions.executed`` are offered
for audit (rate 1), answers reach ``copilot.feedback`` as audit feedback and nothing is executed,
and a console started afterwards does not offer the answered steps again. The second test does it
in headless Chromium (skipped without Debian's chromium at /usr/bin/chromium)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from selective_autonomy.config import ConsoleSettings, Settings
from selective_autonomy.console.app import create_app
from selective_autonomy.schemas.event_parts import Action, Executor, Verdict
from selective_autonomy.schemas.events import ActionExecuted, CopilotFeedback
from selective_autonomy.streams.consumer import EventConsumer
from selective_autonomy.streams.producer import EventProducer
from tests.factories import EMAIL, step
from tests.integration.console_support import ALICE, CHROMIUM, LAUNCH_ARGS, Server, wait_for, with_schema

pytestmark = pytest.mark.integration

TRACE_ID = "5bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01".encode()
CONSOLE = ConsoleSettings(operators={"alice": SecretStr("alice-token-1")}, audit_rate=1.0)
STEPS = [
    step("a1", 2),
    step("a2", 5, action=Action(action_type="update_email", arguments={"email": EMAIL})),
    step("a3", 1, action=Action(action_type="set_priority", arguments={"level": 1})),
]
BY_OPERATOR = step("a4", 3, by=Executor.operator)


@pytest.fixture
def console_settings(settings: Settings, tmp_path: Path) -> Settings:
    return with_schema(settings, tmp_path)


@pytest.fixture
def client(console_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(console_settings, console=CONSOLE)) as test_client:
        yield test_client


def pending(client: TestClient) -> list[str]:
    response = client.get("/api/audits", headers=ALICE)
    assert response.status_code == 200, response.text
    return [audit["action_id"] for audit in response.json()["audits"]]


def test_operators_audit_unattended_steps_and_only_feedback_is_published(
    client: TestClient, console_settings: Settings
) -> None:
    topics = console_settings.topics
    with EventProducer(console_settings) as producer:
        for item in [*STEPS, BY_OPERATOR]:
            producer.send(topics.actions_executed, item, key=item.session_id, headers=[("traceparent", TRACEPARENT)])
    ids = {item.action_id for item in STEPS}
    wait_for(lambda: set(pending(client)) == ids)
    listing = client.get("/api/audits", headers=ALICE)
    assert EMAIL not in listing.text
    assert client.get("/api/counters", headers=ALICE).json()["audits_pending"] == 3

    right = client.post(f"/api/audits/{STEPS[0].action_id}/right", headers=ALICE)
    assert right.status_code == 200, right.text
    should_have_been = {"action_type": "issue_refund", "arguments": {"amount": 20, "reason": "duplicate"}}
    wrong = client.post(f"/api/audits/{STEPS[1].action_id}/wrong", headers=ALICE, json={"action": should_have_been})
    assert wrong.status_code == 200, wrong.text
    assert client.post(f"/api/audits/{STEPS[0].action_id}/right", headers=ALICE).status_code == 409
    assert pending(client) == [STEPS[2].action_id]

    with EventConsumer(console_settings, [topics.copilot_feedback], CopilotFeedback) as consumer:
        records = consumer.take(2, timeout_s=20)
    feedback = {}
    for record in records:
        assert record.event is not None, record.error
        feedback[record.event.suggestion_action_id] = record.event
        assert record.key == record.event.session_id.encode()
        assert TRACE_ID.encode() in dict(record.headers)["traceparent"]
    accepted, corrected = feedback[STEPS[0].action_id], feedback[STEPS[1].action_id]
    assert accepted.is_audit and corrected.is_audit
    assert accepted.verdict is Verdict.accepted and accepted.suggestion == STEPS[0].action
    assert accepted.operator_action is None and accepted.operator_id == "alice"
    assert accepted.critic_score == STEPS[0].critic_score and accepted.state_version == STEPS[0].state_version
    assert corrected.verdict is Verdict.corrected and corrected.suggestion == STEPS[1].action
    assert corrected.operator_action == Action.model_validate(should_have_been)
    assert {accepted.feedback_id, corrected.feedback_id} == {right.json()["feedback_id"], wrong.json()["feedback_id"]}

    # Nothing was executed: actions.executed holds the four records produced above, no more.
    with EventConsumer(console_settings, [topics.actions_executed], ActionExecuted) as consumer:
        executed = [r.event for r in consumer.take(4, timeout_s=20)]
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            extra = consumer.poll(0.2)
            assert extra is None, extra
    assert [e.executed_by for e in executed if e is not None].count(Executor.operator) == 1  # BY_OPERATOR only
    assert {e.action_id for e in executed if e is not None} == {*ids, BY_OPERATOR.action_id}

    # Another console (a replica, or this one restarted) replays the topics: answered steps stay answered.
    with TestClient(create_app(console_settings, console=CONSOLE)) as again:
        wait_for(lambda: again.get("/healthz").json()["feed"] == "live")
        wait_for(lambda: pending(again) == [STEPS[2].action_id])
        time.sleep(0.5)
        assert pending(again) == [STEPS[2].action_id]
        # Its answer removes the audit from the first console too.
        assert again.post(f"/api/audits/{STEPS[2].action_id}/right", headers=ALICE).status_code == 200
    wait_for(lambda: pending(client) == [])


# -- in the browser ---------------------------------------------------------------------------------


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
def test_operators_audit_in_the_browser(console_settings: Settings) -> None:
    from playwright.sync_api import expect, sync_playwright

    topics = console_settings.topics
    with Server(create_app(console_settings, console=CONSOLE)) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(server.url)
            page.fill("input[name=operator_id]", "alice")
            page.fill("input[name=token]", "alice-token-1")
            page.click("button[type=submit]")
            page.wait_for_selector("#live-status[data-state=live]")
            expect(page.locator("#audits-empty")).to_be_visible()

            # Steps executed now appear without a reload.
            with EventProducer(console_settings) as producer:
                for item in STEPS:
                    producer.send(topics.actions_executed, item, key=item.session_id)
            rows = page.locator("#audits > .audit")
            expect(rows).to_have_count(3, timeout=15_000)
            expect(page.locator("#audits-empty")).to_be_hidden()
            expect(page.locator("#audit-count")).to_have_text("3")
            expect(page.locator("[data-counter=audits]")).to_have_text("3", timeout=10_000)
            assert EMAIL not in page.content()

            # Right.
            first = f'[data-audit="{STEPS[0].action_id}"]'
            page.click(f"{first} [data-audit-answer=right]")
            page.wait_for_selector(first, state="detached", timeout=10_000)
            expect(page.locator("#toasts")).to_contain_text("Audited as right")

            # Wrong…: the grammar's form, prefilled with the step; Escape closes it, the grammar's
            # messages show in it, and a valid action records the answer.
            second = f'[data-audit="{STEPS[2].action_id}"]'
            form = f"{second} form.answer-form"
            page.click(f"{second} [data-audit-answer=wrong]")
            page.wait_for_selector(f"{form}:not(.htmx-added)")
            expect(page.locator(f"{form} select[name=action_type]")).to_have_value("set_priority")
            expect(page.locator(f"{form} input[name='arg.level']")).to_have_value("1")
            page.keyboard.press("Escape")
            expect(page.locator(form)).to_have_count(0)
            page.click(f"{second} [data-audit-answer=wrong]")
            page.wait_for_selector(f"{form}:not(.htmx-added)")
            page.click(f"{form} button[type=submit]")  # unchanged: that is the step that ran
            expect(page.locator(f"{second} .form-errors")).to_contain_text("answer 'right' instead")
            page.select_option(f"{form} select[name=action_type]", "issue_refund")
            page.wait_for_selector(f"{form} input[name='arg.amount']")
            page.fill(f"{form} input[name='arg.amount']", "15")
            page.select_option(f"{form} select[name='arg.reason']", "goodwill")
            page.click(f"{form} button[type=submit]")
            page.wait_for_selector(second, state="detached", timeout=10_000)
            expect(rows).to_have_count(1)
            expect(page.locator("#audit-count")).to_have_text("1")
            expect(page.locator("[data-counter=audits]")).to_have_text("1", timeout=10_000)

            # Answered elsewhere (the API here): the row goes live.
            assert httpx_post(server.url, STEPS[1].action_id).status_code == 200
            expect(rows).to_have_count(0, timeout=10_000)
            expect(page.locator("#audits-empty")).to_be_visible()
            assert errors == []
        finally:
            browser.close()

    with EventConsumer(console_settings, [topics.copilot_feedback], CopilotFeedback) as consumer:
        records = consumer.take(3, timeout_s=20)
    feedback = {r.event.suggestion_action_id: r.event for r in records if r.event is not None}
    assert feedback[STEPS[0].action_id].verdict is Verdict.accepted
    refund = Action(action_type="issue_refund", arguments={"amount": 15, "reason": "goodwill"})
    assert feedback[STEPS[2].action_id].verdict is Verdict.corrected
    assert feedback[STEPS[2].action_id].operator_action == refund
    assert all(f.is_audit and f.operator_id == "alice" for f in feedback.values())


def httpx_post(url: str, action_id: str) -> Any:
    import httpx

    return httpx.post(f"{url}/api/audits/{action_id}/right", headers=ALICE)
