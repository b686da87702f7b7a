"""The console app through FastAPI's TestClient, with a list sink: no broker, no network."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from selective_autonomy.config import ConsoleSettings, Settings
from selective_autonomy.console.app import create_app
from selective_autonomy.console.inbox import Inbox
from selective_autonomy.inference.registry import ModelRegistry, ServicePointer
from selective_autonomy.schemas.event_parts import Action, DeferralReason, Executor, Stage, Verdict
from selective_autonomy.schemas.events import ActionExecuted, CopilotFeedback, action_id_for
from tests.factories import EMAIL, NAME, deferral
from tests.factories import HELPDESK as SCHEMA
from tests.support.fakes import ListSink
from tests.unit.console.support import ALICE, BOB, login

TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
REFUND = Action(action_type="issue_refund", arguments={"amount": 49.9, "reason": "duplicate"})


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
def inbox() -> Inbox:
    inbox = Inbox()
    inbox.on_deferral(deferral("s1", 3), [("traceparent", TRACEPARENT)])
    inbox.on_deferral(deferral("s2", 5, suggestion=REFUND, reason=DeferralReason.approval_required))
    inbox.on_deferral(deferral("s3", 1, reason=DeferralReason.model_unavailable))
    inbox.on_deferral(deferral("s4", 2, process="onboarding"))
    return inbox


@pytest.fixture
def client(models_dir: Path, sink: ListSink, inbox: Inbox) -> Iterator[TestClient]:
    console = ConsoleSettings(
        operators={"alice": SecretStr("alice-token-1"), "bob": SecretStr("bob-token-22")},
        operator_processes={"bob": ["onboarding"]},
    )
    app = create_app(Settings(models_dir=models_dir), console=console, sink=sink, inbox=inbox, start_feed=False)
    with TestClient(app) as test_client:
        yield test_client


# -- authentication -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/inbox"),
        ("GET", "/api/counters"),
        ("GET", "/api/deferrals/d-s1-3"),
        ("POST", "/api/deferrals/d-s1-3/accept"),
        ("POST", "/api/deferrals/d-s1-3/correct"),
        ("POST", "/api/deferrals/d-s1-3/alternative"),
        ("GET", "/api/processes/helpdesk/action-schema"),
        ("GET", "/events"),
        ("GET", "/static/console.js"),
    ],
)
def test_anonymous_and_wrong_tokens_are_refused(client: TestClient, method: str, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic YWxpY2U6eA=="}):
        response = client.request(method, path, headers=headers)
        assert response.status_code == 401, (path, headers, response.text)
        assert response.json()["error"] == "unauthenticated"
        assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("path", ["/", "/ui/deferrals/d-s1-3/form?mode=correct"])
def test_pages_redirect_anonymous_people_to_the_login(client: TestClient, path: str) -> None:
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    htmx = client.get(path, headers={"HX-Request": "true"}, follow_redirects=False)
    assert htmx.status_code == 401 and htmx.headers["hx-redirect"] == "/login"
    posted = client.post("/ui/deferrals/d-s1-3/accept", follow_redirects=False)
    assert posted.status_code == 303


def test_healthz_is_open_and_docs_are_off(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "feed": "off"}
    for path in ("/docs", "/openapi.json", "/redoc"):
        assert client.get(path, headers=ALICE).status_code == 404


def test_login_refuses_wrong_credentials_and_a_missing_login_csrf(client: TestClient) -> None:
    page = client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf is not None
    wrong = client.post("/login", data={"operator_id": "alice", "token": "nope-nope", "csrf_token": csrf.group(1)})
    assert wrong.status_code == 401 and "wrong token" in wrong.text
    forged = client.post("/login", data={"operator_id": "alice", "token": "alice-token-1", "csrf_token": "x"})
    assert forged.status_code == 403
    assert "selauto_console" not in client.cookies


def test_cookie_session_needs_the_csrf_token_on_posts(client: TestClient, sink: ListSink) -> None:
    csrf = login(client)
    assert client.get("/api/inbox").status_code == 200  # reads need no token
    refused = client.post("/api/deferrals/d-s1-3/accept", json={})
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    wrong = client.post("/api/deferrals/d-s1-3/accept", json={}, headers={"X-CSRF-Token": "forged"})
    assert wrong.status_code == 403
    form = client.post("/ui/deferrals/d-s1-3/accept", data={"state_version": "3"})
    assert form.status_code == 403
    assert sink.sent == []
    ok = client.post("/ui/deferrals/d-s1-3/accept", data={"state_version": "3", "csrf_token": csrf})
    assert ok.status_code == 200, ok.text
    assert "console-toast" in ok.headers["hx-trigger-after-swap"]
    assert [e.operator_id for e in sink.of(CopilotFeedback)] == ["alice"]  # type: ignore[attr-defined]


def test_logout_ends_the_session(client: TestClient) -> None:
    csrf = login(client)
    assert client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    assert client.get("/", follow_redirects=False).status_code == 303


# -- answers --------------------------------------------------------------------------------------


def test_accept_executes_the_suggestion_as_the_operators_action(client: TestClient, sink: ListSink) -> None:
    response = client.post("/api/deferrals/d-s1-3/accept", headers=ALICE, json={"state_version": 3})
    assert response.status_code == 200, response.text
    answer = response.json()
    suggestion = deferral("s1", 3).suggestion
    assert suggestion is not None
    expected_id = action_id_for("s1", 3, suggestion)
    assert answer["verdict"] == "accepted" and answer["action_id"] == expected_id
    assert [(topic, key) for topic, _, key, _ in sink.sent] == [("actions.executed", "s1"), ("copilot.feedback", "s1")]
    executed = sink.of(ActionExecuted)[0]
    feedback = sink.of(CopilotFeedback)[0]
    assert isinstance(executed, ActionExecuted) and isinstance(feedback, CopilotFeedback)
    assert executed.action_id == expected_id and executed.action == suggestion
    assert executed.executed_by is Executor.operator and executed.operator_id == "alice"
    assert executed.critic_score == 0.62 and executed.policy_version == "ngram-7"
    assert feedback.verdict is Verdict.accepted and feedback.operator_id == "alice"
    assert feedback.deferral_id == "d-s1-3" and feedback.suggestion == suggestion and feedback.operator_action is None
    assert feedback.latency_ms >= 0 and feedback.latency_ms == answer["latency_ms"]
    # The deferral's trace goes on in both records.
    for _, _, _, headers in sink.sent:
        assert dict(headers)["traceparent"].split(b"-")[1] == TRACEPARENT.split(b"-")[1]
    assert sink.flushes == 1


def test_correct_executes_the_operators_action(client: TestClient, sink: ListSink) -> None:
    action = {"action_type": "set_priority", "arguments": {"level": 2}}
    response = client.post("/api/deferrals/d-s1-3/correct", headers=ALICE, json={"action": action})
    assert response.status_code == 200, response.text
    operator_action = Action.model_validate(action)
    executed, feedback = sink.of(ActionExecuted)[0], sink.of(CopilotFeedback)[0]
    assert isinstance(executed, ActionExecuted) and isinstance(feedback, CopilotFeedback)
    assert executed.action == operator_action and executed.action_id == action_id_for("s1", 3, operator_action)
    assert executed.tier.value == "critical" and executed.critic_score is None
    assert executed.executed_by is Executor.operator and executed.operator_id == "alice"
    assert feedback.verdict is Verdict.corrected and feedback.operator_action == operator_action
    assert feedback.suggestion == deferral("s1", 3).suggestion and feedback.critic_score == 0.62


def test_acceptable_alternative_records_and_executes_the_operators_action(client: TestClient, sink: ListSink) -> None:
    action = {"action_type": "issue_refund", "arguments": {"amount": 30, "reason": "goodwill", "notify": True}}
    response = client.post("/api/deferrals/d-s2-5/alternative", headers=ALICE, json={"action": action})
    assert response.status_code == 200, response.text
    feedback, executed = sink.of(CopilotFeedback)[0], sink.of(ActionExecuted)[0]
    assert isinstance(feedback, CopilotFeedback) and isinstance(executed, ActionExecuted)
    assert feedback.verdict is Verdict.acceptable_alternative and feedback.suggestion == REFUND
    assert feedback.operator_action == executed.action == Action.model_validate(action)
    assert executed.tier.value == "approval_required"


def test_invalid_correction_is_refused_with_the_grammars_message(client: TestClient, sink: ListSink) -> None:
    bad = {"action_type": "set_priority", "arguments": {"level": "high"}}
    response = client.post("/api/deferrals/d-s1-3/correct", headers=ALICE, json={"action": bad})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "answer_refused"
    assert body["violations"] == [
        {"loc": "action", "msg": "argument 'level' of 'set_priority' must be an integer, got str"}
    ]
    unknown = client.post(
        "/api/deferrals/d-s1-3/correct", headers=ALICE, json={"action": {"action_type": "reboot", "arguments": {}}}
    )
    assert unknown.status_code == 422 and "unknown action_type 'reboot'" in unknown.json()["message"]
    malformed = client.post("/api/deferrals/d-s1-3/correct", headers=ALICE, json={"action": {"arguments": {}}})
    assert malformed.status_code == 422 and malformed.json()["error"] == "invalid_request"
    same = client.post(
        "/api/deferrals/d-s1-3/correct",
        headers=ALICE,
        json={"action": {"action_type": "lookup_invoice", "arguments": {"invoice_id": "INV-204"}}},
    )
    assert same.status_code == 422 and "accept it instead" in same.json()["message"]
    assert sink.sent == []
    assert client.get("/api/deferrals/d-s1-3", headers=ALICE).status_code == 200  # still pending


def test_invalid_form_correction_shows_the_grammars_message_in_the_form(client: TestClient, sink: ListSink) -> None:
    response = client.post(
        "/ui/deferrals/d-s1-3/correct",
        headers={**ALICE, "HX-Request": "true"},
        data={"action_type": "issue_refund", "arg.amount": "lots", "arg.reason": "outage", "state_version": "3"},
    )
    assert response.status_code == 422
    assert response.headers["hx-retarget"] == "find .form-errors"
    assert "argument &#39;amount&#39; of &#39;issue_refund&#39; must be a number, got str" in response.text
    ok = client.post(
        "/ui/deferrals/d-s1-3/correct",
        headers=ALICE,
        data={"action_type": "issue_refund", "arg.amount": "12.5", "arg.reason": "outage", "arg.notify": ""},
    )
    assert ok.status_code == 200, ok.text
    executed = sink.of(ActionExecuted)[0]
    assert isinstance(executed, ActionExecuted)
    assert executed.action.arguments == {"amount": 12.5, "reason": "outage"}


def test_second_answer_gets_409(client: TestClient, sink: ListSink) -> None:
    assert client.post("/api/deferrals/d-s1-3/accept", headers=ALICE).status_code == 200
    again = client.post("/api/deferrals/d-s1-3/accept", headers=ALICE)
    assert again.status_code == 409 and again.json()["error"] == "card_gone"
    action = {"action_type": "set_priority", "arguments": {"level": 1}}
    assert client.post("/api/deferrals/d-s1-3/correct", headers=ALICE, json={"action": action}).status_code == 409
    htmx = client.post("/ui/deferrals/d-s1-3/accept", headers={**ALICE, "HX-Request": "true"})
    assert htmx.status_code == 409 and htmx.headers["hx-reswap"] == "delete"
    assert client.post("/api/deferrals/nope/accept", headers=ALICE).status_code == 409
    stale = client.post("/api/deferrals/d-s2-5/accept", headers=ALICE, json={"state_version": 4})
    assert stale.status_code == 409
    assert len(sink.of(CopilotFeedback)) == 1


def test_a_deferral_without_suggestion_only_allows_correct(client: TestClient, sink: ListSink) -> None:
    accept = client.post("/api/deferrals/d-s3-1/accept", headers=ALICE)
    assert accept.status_code == 422 and "no suggestion" in accept.json()["message"]
    action = {"action_type": "send_text", "arguments": {"text": "One moment please."}}
    alternative = client.post("/api/deferrals/d-s3-1/alternative", headers=ALICE, json={"action": action})
    assert alternative.status_code == 422
    page = client.get("/", headers=ALICE).text
    card = page[page.index('data-card="d-s3-1"') :]
    card = card[: card.index("</article>")]
    assert 'data-answer="correct"' in card and 'data-answer="accept"' not in card
    assert 'data-answer="alternative"' not in card
    correct = client.post("/api/deferrals/d-s3-1/correct", headers=ALICE, json={"action": action})
    assert correct.status_code == 200
    feedback = sink.of(CopilotFeedback)[0]
    assert isinstance(feedback, CopilotFeedback) and feedback.suggestion is None
    assert feedback.verdict is Verdict.corrected


def test_undelivered_answer_puts_the_card_back(client: TestClient, sink: ListSink) -> None:
    sink.fail = True
    response = client.post("/api/deferrals/d-s1-3/accept", headers=ALICE)
    assert response.status_code == 503 and response.json()["error"] == "not_delivered"
    assert client.get("/api/deferrals/d-s1-3", headers=ALICE).status_code == 200
    sink.fail = False
    assert client.post("/api/deferrals/d-s1-3/accept", headers=ALICE).status_code == 200


def test_operators_see_and_answer_only_their_processes(client: TestClient) -> None:
    alice = client.get("/api/inbox", headers=ALICE).json()
    bob = client.get("/api/inbox", headers=BOB).json()
    assert [c["deferral_id"] for c in alice["cards"]] == ["d-s1-3", "d-s2-5", "d-s3-1", "d-s4-2"]
    assert [c["deferral_id"] for c in bob["cards"]] == ["d-s4-2"] and bob["operator_id"] == "bob"
    assert client.post("/api/deferrals/d-s1-3/accept", headers=BOB).status_code == 409
    assert bob["counters"]["stages"] == []  # no onboarding process in the models dir


# -- what the page shows --------------------------------------------------------------------------


def test_no_personal_data_in_any_html_or_json(client: TestClient) -> None:
    pages = [
        client.get("/", headers=ALICE).text,
        client.get("/ui/deferrals/d-s1-3/form?mode=correct", headers=ALICE).text,
        client.get("/ui/deferrals/d-s2-5/form?mode=alternative", headers=ALICE).text,
        client.get("/ui/deferrals/d-s1-3/arguments?action_type=update_email", headers=ALICE).text,
        client.get("/api/inbox", headers=ALICE).text,
    ]
    for text in pages:
        assert NAME not in text and EMAIL not in text and "Ada" not in text
    assert "[masked]" in pages[0]


def test_inbox_page_and_counters(client: TestClient, sink: ListSink) -> None:
    page = client.get("/", headers=ALICE)
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert page.text.index('data-card="d-s1-3"') < page.text.index('data-card="d-s2-5"')
    for text in ("Critic score", "0.62", "0.90", "71%", "Below threshold", "helpdesk / billing", "selective"):
        assert text in page.text
    client.post("/api/deferrals/d-s1-3/accept", headers=ALICE)
    counters = client.get("/api/counters", headers=ALICE).json()
    assert counters["waiting"] == 3 and counters["operator_today"] == 1 and counters["automation_rate"] == 0.0
    assert {(s["business_cluster"], s["stage"]) for s in counters["stages"]} == {
        ("billing", "selective"),
        ("outage", "copilot"),
    }


def test_correct_form_is_generated_from_the_action_grammar(client: TestClient) -> None:
    form = client.get("/ui/deferrals/d-s2-5/form?mode=correct", headers=ALICE).text
    assert 'hx-post="/ui/deferrals/d-s2-5/correct"' in form
    for name in SCHEMA.action_names:
        assert f'<option value="{name}"' in form
    assert '<option value="issue_refund" selected>' in form  # prefilled with the suggestion
    assert 'name="arg.reason"' in form and '<option value="duplicate" selected>' in form
    arguments = client.get("/ui/deferrals/d-s2-5/arguments?action_type=set_priority", headers=ALICE).text
    assert 'type="number" name="arg.level" step="1"' in arguments
    assert client.get("/ui/deferrals/d-s2-5/form?mode=bogus", headers=ALICE).status_code == 422


def test_static_assets_for_signed_in_operators(client: TestClient) -> None:
    js = client.get("/static/console.js", headers=ALICE)
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    htmx = client.get("/static/vendor/htmx-2.0.11.min.js", headers=ALICE)
    assert htmx.status_code == 200 and b"htmx" in htmx.content
    assert client.get("/static/../app.py", headers=ALICE).status_code == 404
    assert client.get("/static/vendor/../../app.py", headers=ALICE).status_code == 404


def test_live_stream_sends_the_inbox_then_changes(client: TestClient, inbox: Inbox) -> None:
    seen: list[tuple[str, str]] = []
    with client.stream("GET", "/events", headers=BOB) as stream:
        assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
        event, data = "", []
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: "):
                data.append(line[len("data: ") :])
            elif line == "" and event:
                seen.append((event, "\n".join(data)))
                event, data = "", []
                if seen[-1][0] == "counters" and len(seen) == 3:
                    inbox.on_deferral(deferral("s8", 1))  # not bob's process: never sent to him
                    inbox.on_deferral(deferral("s9", 1, process="onboarding"))
                elif seen[-1][0] == "card":
                    inbox.claim("d-s9-1")
                elif seen[-1][0] == "remove":
                    break
    kinds = [kind for kind, _ in seen]
    assert kinds == ["inbox", "audits", "counters", "card", "remove"]
    assert 'data-card="d-s4-2"' in seen[0][1] and 'data-card="d-s1-3"' not in seen[0][1]
    assert 'data-card="d-s9-1"' in seen[3][1] and NAME not in seen[3][1] and EMAIL not in seen[3][1]
    assert seen[4][1] == "d-s9-1"


def test_an_anonymous_caller_is_refused_before_the_body_is_read(client: TestClient) -> None:
    for path in ("/api/deferrals/d-s1-3/correct", "/api/audits/a1/wrong", "/api/deferrals/d-s1-3/accept"):
        response = client.post(path, content=b"\xff{not json", headers={"Content-Type": "application/json"})
        assert response.status_code == 401 and response.json()["error"] == "unauthenticated", path
    malformed = client.post(
        "/api/deferrals/d-s1-3/correct", content=b"{", headers={**ALICE, "Content-Type": "application/json"}
    )
    assert malformed.status_code in (400, 422)  # signed in, the body is read and refused


def test_ids_in_api_paths_follow_their_patterns(client: TestClient) -> None:
    assert client.get("/api/processes/..%2Fetc/action-schema", headers=ALICE).status_code in (404, 422)
    assert client.get("/api/processes/bill%00ing/action-schema", headers=ALICE).status_code == 422
    assert client.get("/api/deferrals/d%00x", headers=ALICE).status_code == 422
    assert client.get("/api/audits/a%0Ab", headers=ALICE).status_code == 422
