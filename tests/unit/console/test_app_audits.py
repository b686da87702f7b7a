"""Audits through the app (FastAPI's TestClient, a list sink, no broker): the JSON API, the answers'
records, the HTML page, the "wrong" form and the live stream."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from selective_autonomy.config import ConsoleSettings, Settings
from selective_autonomy.console.app import create_app
from selective_autonomy.console.audit_answers import audit_feedback_id
from selective_autonomy.console.audits import AuditBook
from selective_autonomy.console.context import ConsoleContext
from selective_autonomy.console.inbox import Inbox
from selective_autonomy.inference.registry import ModelRegistry, ServicePointer
from selective_autonomy.schemas.event_parts import Action, Executor, Stage, Verdict
from selective_autonomy.schemas.events import ActionExecuted, CopilotFeedback
from tests.factories import EMAIL, deferral, step
from tests.factories import HELPDESK as SCHEMA
from tests.factories import INVOICE_LOOKUP as LOOKUP
from tests.support.fakes import ListSink
from tests.unit.console.support import ALICE, BOB, login

TRACEPARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
EMAIL_CHANGE = Action(action_type="update_email", arguments={"email": EMAIL})
PRIORITY = Action(action_type="set_priority", arguments={"level": 2})
FIRST = step("u1", 2)  # lookup_invoice
SECOND = step("u2", 4, action=EMAIL_CHANGE)  # personal data in its argument
THIRD = step("u3", 1, process="onboarding", action=Action(action_type="welcome"))


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    registry = ModelRegistry(tmp_path / "models")
    registry.save_schema(SCHEMA)
    registry.publish("helpdesk", ServicePointer(stages={"billing": Stage.selective}, default_stage=Stage.copilot))
    return tmp_path / "models"


@pytest.fixture
def sink() -> ListSink:
    return ListSink()


@pytest.fixture
def audits() -> AuditBook:
    book = AuditBook(rate=1.0)
    book.on_executed(FIRST, [("traceparent", TRACEPARENT)])
    book.on_executed(SECOND)
    book.on_executed(THIRD)
    book.on_executed(step("u4", 1, by=Executor.operator))  # an operator's step: no audit
    return book


@pytest.fixture
def client(models_dir: Path, sink: ListSink, audits: AuditBook) -> Iterator[TestClient]:
    inbox = Inbox()
    inbox.on_deferral(deferral("s1", 3))
    console = ConsoleSettings(
        operators={"alice": SecretStr("alice-token-1"), "bob": SecretStr("bob-token-22")},
        operator_processes={"bob": ["onboarding"]},
    )
    app = create_app(
        Settings(models_dir=models_dir), console=console, sink=sink, inbox=inbox, audits=audits, start_feed=False
    )
    with TestClient(app) as test_client:
        yield test_client


def pending(client: TestClient, headers: dict[str, str] = ALICE) -> list[str]:
    response = client.get("/api/audits", headers=headers)
    assert response.status_code == 200, response.text
    return [audit["action_id"] for audit in response.json()["audits"]]


def only_feedback(sink: ListSink) -> CopilotFeedback:
    assert [topic for topic, *_ in sink.sent] == ["copilot.feedback"]
    assert sink.of(ActionExecuted) == []
    feedback = sink.of(CopilotFeedback)[0]
    assert isinstance(feedback, CopilotFeedback)
    return feedback


# -- settings and wiring ----------------------------------------------------------------------------


def test_the_app_builds_its_book_from_the_settings(models_dir: Path) -> None:
    console = ConsoleSettings(audit_rate=0.25, max_pending_audits=7, max_tracked_sessions=300)
    app = create_app(Settings(models_dir=models_dir), console=console, sink=ListSink(), start_feed=False)
    context: ConsoleContext = app.state.console
    assert context.audits.rate == 0.25 and context.audits.max_pending == 7 and context.audits.max_answered == 300
    assert context.reader.audits is context.audits and context.audit_answers.audits is context.audits
    # Deferral and audit answers go out one at a time, through the same delivery.
    assert context.audit_answers.delivery is context.answers.delivery


# -- access -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/audits"),
        ("GET", f"/api/audits/{FIRST.action_id}"),
        ("POST", f"/api/audits/{FIRST.action_id}/right"),
        ("POST", f"/api/audits/{FIRST.action_id}/wrong"),
    ],
)
def test_anonymous_and_wrong_tokens_are_refused(client: TestClient, sink: ListSink, method: str, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic YWxpY2U6eA=="}):
        response = client.request(method, path, headers=headers)
        assert response.status_code == 401, (path, headers, response.text)
        assert response.json()["error"] == "unauthenticated"
    assert sink.sent == []


@pytest.mark.parametrize(
    "path", [f"/ui/audits/{FIRST.action_id}/form", f"/ui/audits/{FIRST.action_id}/arguments?action_type=set_priority"]
)
def test_audit_fragments_send_anonymous_people_to_the_login(client: TestClient, path: str) -> None:
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    for answer in ("right", "wrong"):
        posted = client.post(f"/ui/audits/{FIRST.action_id}/{answer}", follow_redirects=False)
        assert posted.status_code == 303


def test_cookie_sessions_need_the_csrf_token_to_answer(client: TestClient, sink: ListSink) -> None:
    csrf = login(client)
    assert client.get("/api/audits").status_code == 200
    assert client.post(f"/api/audits/{FIRST.action_id}/right", json={}).status_code == 403
    forged = client.post(f"/api/audits/{FIRST.action_id}/right", json={}, headers={"X-CSRF-Token": "forged"})
    assert forged.status_code == 403
    assert client.post(f"/ui/audits/{FIRST.action_id}/right").status_code == 403
    assert sink.sent == []
    ok = client.post(f"/ui/audits/{FIRST.action_id}/right", data={"csrf_token": csrf})
    assert ok.status_code == 200, ok.text
    assert "Audited as right" in ok.headers["hx-trigger-after-swap"]
    assert only_feedback(sink).operator_id == "alice"


# -- the list ---------------------------------------------------------------------------------------


def test_pending_audits_oldest_first_per_operator_and_masked(client: TestClient) -> None:
    assert pending(client) == [FIRST.action_id, SECOND.action_id, THIRD.action_id]
    assert pending(client, BOB) == [THIRD.action_id]
    body = client.get("/api/audits", headers=ALICE)
    assert EMAIL not in body.text and "ada.lovelace" not in body.text
    first = body.json()["audits"][0]
    assert first["session_id"] == "u1" and first["process_id"] == "helpdesk" and first["state_version"] == 2
    assert first["action"] == {
        "action_type": "lookup_invoice",
        "arguments": {"invoice_id": "INV-204"},
        "action_id": FIRST.action_id,
        "tier": "auto",
    }
    assert first["critic_score"] == 0.97 and first["threshold"] == 0.93 and first["schema_known"] is True
    assert body.json()["audits"][1]["action"]["arguments"] == {"email": "[masked]"}
    # No schema for the onboarding process: no values at all.
    assert client.get("/api/audits", headers=BOB).json()["audits"][0]["schema_known"] is False
    one = client.get(f"/api/audits/{SECOND.action_id}", headers=ALICE)
    assert one.status_code == 200 and one.json()["session_id"] == "u2"
    assert client.get(f"/api/audits/{SECOND.action_id}", headers=BOB).status_code == 404
    assert client.get("/api/audits/nope", headers=ALICE).status_code == 404
    counters = client.get("/api/counters", headers=ALICE).json()
    assert counters["audits_pending"] == 3
    assert client.get("/api/counters", headers=BOB).json()["audits_pending"] == 1


# -- answers ----------------------------------------------------------------------------------------


def test_right_publishes_only_an_accepted_audit_feedback(client: TestClient, sink: ListSink) -> None:
    response = client.post(f"/api/audits/{FIRST.action_id}/right", headers=ALICE)
    assert response.status_code == 200, response.text
    answer = response.json()
    feedback = only_feedback(sink)
    assert feedback.is_audit and feedback.deferral_id is None
    assert feedback.suggestion_action_id == FIRST.action_id and feedback.suggestion == FIRST.action
    assert feedback.verdict is Verdict.accepted and feedback.operator_action is None
    assert feedback.operator_id == "alice" and feedback.latency_ms == answer["latency_ms"] >= 0
    assert (feedback.session_id, feedback.process_id, feedback.business_cluster, feedback.state_version) == (
        "u1",
        "helpdesk",
        "billing",
        2,
    )
    assert (feedback.policy_probability, feedback.critic_score) == (0.88, 0.97)
    assert (feedback.policy_version, feedback.critic_version) == ("ngram-7", "critic-3")
    assert feedback.feedback_id == audit_feedback_id(FIRST.action_id, Verdict.accepted, FIRST.action)
    assert answer == {
        "action_id": FIRST.action_id,
        "session_id": "u1",
        "verdict": "accepted",
        "feedback_id": feedback.feedback_id,
        "audited_action": FIRST.action.model_dump(),
        "operator_action": None,
        "operator_id": "alice",
        "latency_ms": feedback.latency_ms,
    }
    # Keyed by session; the executed step's trace goes on.
    _, _, key, headers = sink.sent[0]
    assert key == "u1"
    assert dict(headers)["traceparent"].split(b"-")[1] == TRACEPARENT.split(b"-")[1]
    assert sink.flushes == 1
    assert pending(client) == [SECOND.action_id, THIRD.action_id]
    assert client.get("/api/counters", headers=ALICE).json()["operator_today"] == 0  # nothing was executed


def test_wrong_publishes_a_corrected_audit_feedback_with_the_operators_action(
    client: TestClient, sink: ListSink
) -> None:
    body = {"action": {"action_type": "set_priority", "arguments": {"level": 2}}}
    response = client.post(f"/api/audits/{SECOND.action_id}/wrong", headers=ALICE, json=body)
    assert response.status_code == 200, response.text
    feedback = only_feedback(sink)
    assert feedback.is_audit and feedback.verdict is Verdict.corrected
    assert feedback.suggestion == EMAIL_CHANGE and feedback.operator_action == PRIORITY
    assert feedback.suggestion_action_id == SECOND.action_id and feedback.state_version == 4
    assert feedback.feedback_id == audit_feedback_id(SECOND.action_id, Verdict.corrected, PRIORITY)
    assert response.json()["operator_action"] == PRIORITY.model_dump()
    assert response.json()["verdict"] == "corrected"
    assert sink.sent[0][2] == "u2"


def test_a_body_is_optional_for_right_and_required_for_wrong(client: TestClient, sink: ListSink) -> None:
    assert client.post(f"/api/audits/{FIRST.action_id}/right", headers=ALICE, json={}).status_code == 200
    extra = client.post(f"/api/audits/{SECOND.action_id}/right", headers=ALICE, json={"verdict": "x"})
    assert extra.status_code == 422 and extra.json()["error"] == "invalid_request"
    missing = client.post(f"/api/audits/{SECOND.action_id}/wrong", headers=ALICE)
    assert missing.status_code == 422 and missing.json()["error"] == "invalid_request"
    assert len(sink.sent) == 1


def test_an_invalid_wrong_answer_is_refused_with_the_grammars_message(client: TestClient, sink: ListSink) -> None:
    bad = {"action": {"action_type": "set_priority", "arguments": {"level": "high"}}}
    response = client.post(f"/api/audits/{FIRST.action_id}/wrong", headers=ALICE, json=bad)
    assert response.status_code == 422
    assert response.json()["error"] == "answer_refused"
    assert response.json()["violations"] == [
        {"loc": "action", "msg": "argument 'level' of 'set_priority' must be an integer, got str"}
    ]
    unknown = {"action": {"action_type": "reboot", "arguments": {}}}
    refused = client.post(f"/api/audits/{FIRST.action_id}/wrong", headers=ALICE, json=unknown)
    assert refused.status_code == 422 and "unknown action_type 'reboot'" in refused.json()["message"]
    malformed = client.post(f"/api/audits/{FIRST.action_id}/wrong", headers=ALICE, json={"action": {}})
    assert malformed.status_code == 422 and malformed.json()["error"] == "invalid_request"
    same = {"action": LOOKUP.model_dump()}
    itself = client.post(f"/api/audits/{FIRST.action_id}/wrong", headers=ALICE, json=same)
    assert itself.status_code == 422 and "answer 'right' instead" in itself.json()["message"]
    # No schema for the process: a wrong answer cannot be checked.
    unchecked = client.post(
        f"/api/audits/{THIRD.action_id}/wrong", headers=BOB, json={"action": {"action_type": "greet"}}
    )
    assert unchecked.status_code == 422 and "no process schema" in unchecked.json()["message"]
    assert sink.sent == []
    assert pending(client) == [FIRST.action_id, SECOND.action_id, THIRD.action_id]


def test_a_second_answer_gets_409(client: TestClient, sink: ListSink) -> None:
    assert client.post(f"/api/audits/{FIRST.action_id}/right", headers=ALICE).status_code == 200
    again = client.post(f"/api/audits/{FIRST.action_id}/right", headers=ALICE)
    assert again.status_code == 409 and again.json()["error"] == "audit_gone"
    wrong = client.post(f"/api/audits/{FIRST.action_id}/wrong", headers=ALICE, json={"action": PRIORITY.model_dump()})
    assert wrong.status_code == 409
    htmx = client.post(f"/ui/audits/{FIRST.action_id}/right", headers={**ALICE, "HX-Request": "true"})
    assert htmx.status_code == 409 and htmx.headers["hx-reswap"] == "delete"
    assert client.post("/api/audits/nope/right", headers=ALICE).status_code == 409
    # Bob does not answer for helpdesk.
    assert client.post(f"/api/audits/{SECOND.action_id}/right", headers=BOB).status_code == 409
    assert len(sink.of(CopilotFeedback)) == 1


def test_an_undelivered_answer_gives_the_audit_back(client: TestClient, sink: ListSink) -> None:
    sink.fail = True
    response = client.post(f"/api/audits/{FIRST.action_id}/right", headers=ALICE)
    assert response.status_code == 503 and response.json()["error"] == "not_delivered"
    assert pending(client) == [FIRST.action_id, SECOND.action_id, THIRD.action_id]
    page = client.post(f"/ui/audits/{FIRST.action_id}/right", headers={**ALICE, "HX-Request": "true"})
    assert page.status_code == 503 and page.headers["hx-reswap"] == "none"
    assert pending(client)[0] == FIRST.action_id
    sink.fail = False
    retried = client.post(f"/api/audits/{FIRST.action_id}/right", headers=ALICE)
    assert retried.status_code == 200
    assert retried.json()["feedback_id"] == audit_feedback_id(FIRST.action_id, Verdict.accepted, FIRST.action)


def test_audit_feedback_read_back_or_from_another_console_removes_the_audit(
    client: TestClient, audits: AuditBook, sink: ListSink
) -> None:
    assert client.post(f"/api/audits/{FIRST.action_id}/right", headers=ALICE).status_code == 200
    feedback = only_feedback(sink)
    audits.on_feedback(feedback)  # our own record, read back by the feed
    audits.on_executed(FIRST)  # and a replay of the step
    assert FIRST.action_id not in pending(client)
    other = feedback.model_copy(update={"suggestion_action_id": SECOND.action_id, "operator_id": "carol"})
    audits.on_feedback(other)
    assert pending(client) == [THIRD.action_id]


# -- the page ---------------------------------------------------------------------------------------


def audit_row(page: str, action_id: str) -> str:
    row = page[page.index(f'data-audit="{action_id}"') :]
    return row[: row.index("</article>")]


def test_the_page_lists_audits_below_the_inbox(client: TestClient) -> None:
    page = client.get("/", headers=ALICE).text
    assert page.index('id="inbox"') < page.index('id="audits"')
    assert 'data-card="d-s1-3"' in page
    row = audit_row(page, FIRST.action_id)
    for text in ("u1", "helpdesk", "step 2", "lookup_invoice", "INV-204", "0.97", "0.93", "88%", "Ran unattended"):
        assert text in row, text
    assert 'data-audit-answer="right"' in row and "Right</button>" in row
    assert 'data-audit-answer="wrong"' in row and "Wrong…</button>" in row
    assert f'hx-post="/ui/audits/{FIRST.action_id}/right"' in row
    assert f'hx-get="/ui/audits/{FIRST.action_id}/form"' in row
    assert T_CLOCK.search(row) is not None  # when it ran
    assert EMAIL not in page and "[masked]" in audit_row(page, SECOND.action_id)
    assert 'data-counter="audits">3<' in page
    assert 'id="audit-count">3<' in page
    bob = client.get("/", headers=BOB).text
    assert f'data-audit="{THIRD.action_id}"' in bob and f'data-audit="{FIRST.action_id}"' not in bob
    assert 'data-audit-answer="wrong"' not in bob and "need the process schema" in bob


T_CLOCK = re.compile(r"ran <time datetime=\"[^\"]+\"[^>]*>\d\d:\d\d:\d\d UTC</time>")


def test_an_empty_audit_list_says_so(models_dir: Path) -> None:
    console = ConsoleSettings(operators={"alice": SecretStr("alice-token-1")})
    app = create_app(Settings(models_dir=models_dir), console=console, sink=ListSink(), start_feed=False)
    with TestClient(app) as client:
        page = client.get("/", headers=ALICE).text
    assert 'id="audits-empty" class="audits-empty muted">' in page  # shown (not hidden)
    assert 'data-audit="' not in page and 'data-counter="audits">0<' in page


def test_the_wrong_form_is_the_grammars_correction_form(client: TestClient) -> None:
    form = client.get(f"/ui/audits/{FIRST.action_id}/form", headers=ALICE).text
    assert f'hx-post="/ui/audits/{FIRST.action_id}/wrong"' in form
    assert f'hx-get="/ui/audits/{FIRST.action_id}/arguments"' in form
    for name in SCHEMA.action_names:
        assert f'<option value="{name}"' in form
    assert '<option value="lookup_invoice" selected>' in form  # prefilled with the step that ran
    assert 'name="arg.invoice_id" value="INV-204"' in form
    assert 'name="state_version"' not in form and "Nothing is executed" in form and "Record as wrong" in form
    masked = client.get(f"/ui/audits/{SECOND.action_id}/form", headers=ALICE).text
    assert EMAIL not in masked and 'name="arg.email" value=""' in masked
    arguments = client.get(f"/ui/audits/{FIRST.action_id}/arguments?action_type=set_priority", headers=ALICE).text
    assert 'type="number" name="arg.level" step="1"' in arguments
    unknown = client.get(f"/ui/audits/{FIRST.action_id}/arguments?action_type=reboot", headers=ALICE)
    assert unknown.status_code == 200 and "arg." not in unknown.text
    assert client.get(f"/ui/audits/{THIRD.action_id}/form", headers=BOB).status_code == 422
    gone = client.get("/ui/audits/nope/form", headers={**ALICE, "HX-Request": "true"})
    assert gone.status_code == 409 and gone.headers["hx-reswap"] == "delete"


def test_the_wrong_form_answers_and_shows_the_grammars_messages(client: TestClient, sink: ListSink) -> None:
    path = f"/ui/audits/{FIRST.action_id}/wrong"
    invalid = client.post(path, headers={**ALICE, "HX-Request": "true"}, data={"action_type": "issue_refund"})
    assert invalid.status_code == 422 and invalid.headers["hx-retarget"] == "find .form-errors"
    assert "issue_refund" in invalid.text and "amount" in invalid.text
    empty = client.post(path, headers=ALICE, data={"action_type": ""})
    assert empty.status_code == 422 and "choose an action" in empty.text
    itself = client.post(path, headers=ALICE, data={"action_type": "lookup_invoice", "arg.invoice_id": "INV-204"})
    assert itself.status_code == 422 and "right" in itself.text
    assert sink.sent == []
    ok = client.post(
        path,
        headers=ALICE,
        data={"action_type": "issue_refund", "arg.amount": "12.5", "arg.reason": "outage", "arg.notify": ""},
    )
    assert ok.status_code == 200, ok.text
    assert "should have been issue_refund" in ok.headers["hx-trigger-after-swap"]
    feedback = only_feedback(sink)
    assert feedback.verdict is Verdict.corrected
    assert feedback.operator_action == Action(
        action_type="issue_refund", arguments={"amount": 12.5, "reason": "outage"}
    )
    gone = client.post(path, headers={**ALICE, "HX-Request": "true"}, data={"action_type": "set_priority"})
    assert gone.status_code == 409 and gone.headers["hx-reswap"] == "delete"


# -- the live stream --------------------------------------------------------------------------------


def test_live_stream_sends_audits_then_their_changes(client: TestClient, audits: AuditBook) -> None:
    seen: list[tuple[str, str]] = []
    fresh = step("u9", 3, process="onboarding", action=Action(action_type="welcome"))
    with client.stream("GET", "/events", headers=BOB) as stream:
        event, data = "", []
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: "):
                data.append(line[len("data: ") :])
            elif line == "" and event:
                seen.append((event, "\n".join(data)))
                event, data = "", []
                kinds = [kind for kind, _ in seen]
                if kinds == ["inbox", "audits", "counters"]:
                    audits.on_executed(step("u8", 3))  # helpdesk: not bob's, never sent to him
                    audits.on_executed(fresh)
                elif kinds[-1] == "audit":
                    audits.claim(fresh.action_id)
                elif kinds[-1] == "audit-remove":
                    break
    assert [kind for kind, _ in seen[:3]] == ["inbox", "audits", "counters"]
    assert f'data-audit="{THIRD.action_id}"' in seen[1][1] and f'data-audit="{FIRST.action_id}"' not in seen[1][1]
    assert 'data-counter="audits">1<' in seen[2][1]
    changes = [(kind, data) for kind, data in seen[3:] if kind != "counters"]
    assert [kind for kind, _ in changes] == ["audit", "audit-remove"]
    assert f'data-audit="{fresh.action_id}"' in changes[0][1] and "u8" not in changes[0][1]
    assert changes[1][1] == fresh.action_id
