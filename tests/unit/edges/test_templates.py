"""Request templates: placeholders, percent-encoding, typed JSON values, optional arguments, refusals."""

from __future__ import annotations

import pytest

from selective_autonomy.edges.errors import TemplateError
from selective_autonomy.edges.executor.templates import (
    HeaderTemplate,
    JsonTemplate,
    TextTemplate,
    UrlTemplate,
    action_context,
    parse,
)
from selective_autonomy.schemas.event_parts import Action
from tests.factories import executed

ACTION = executed(Action(action_type="refund", arguments={"amount": 12.5, "order_id": "A 1/2", "urgent": True}))
CONTEXT = action_context(ACTION)


def test_url_placeholders_are_percent_encoded_so_arguments_cannot_change_the_path() -> None:
    url = UrlTemplate("https://bpm/api/sessions/{session_id}/orders/{arguments.order_id}/refund?v={state_version}")
    assert url.render_url(CONTEXT) == "https://bpm/api/sessions/s1/orders/A%201%2F2/refund?v=3"
    sneaky = executed(Action(action_type="refund", arguments={"order_id": "../../admin?x=1#"}))
    assert "/admin" not in url.render_url(action_context(sneaky))


def test_a_body_string_that_is_one_placeholder_keeps_its_type() -> None:
    template = JsonTemplate(
        {
            "id": "{action_id}",
            "amount": "{arguments.amount}",
            "urgent": "{arguments.urgent}",
            "version": "{state_version}",
            "all": "{arguments}",
            "text": "refund {arguments.amount} for {session_id}",
            "fixed": [1, None, {"k": "{operator_id}"}],
        }
    )
    assert template.render(CONTEXT) == {
        "id": ACTION.action_id,
        "amount": 12.5,
        "urgent": True,
        "version": 3,
        "all": {"amount": 12.5, "order_id": "A 1/2", "urgent": True},
        "text": "refund 12.5 for s1",
        "fixed": [1, None, {"k": None}],
    }


def test_braces_escape_and_texts_render_json_spellings() -> None:
    assert TextTemplate("{{literal}} {arguments.urgent}").render(CONTEXT) == "{literal} true"
    assert TextTemplate("{arguments}").render(CONTEXT) == '{"amount":12.5,"order_id":"A 1/2","urgent":true}'


def test_missing_arguments_fail_unless_optional() -> None:
    with pytest.raises(TemplateError, match="no argument 'note'"):
        JsonTemplate({"note": "{arguments.note}"}).render(CONTEXT)
    assert JsonTemplate({"note": "{arguments.note?}"}).render(CONTEXT) == {"note": None}
    assert TextTemplate("[{arguments.note?}]").render(CONTEXT) == "[]"


def test_headers_refuse_line_breaks() -> None:
    assert HeaderTemplate("session={session_id}").render_header(CONTEXT) == "session=s1"
    injected = action_context(executed(Action(action_type="x", arguments={"a": "ok\r\nX-Admin: 1"})))
    with pytest.raises(TemplateError, match="line break"):
        HeaderTemplate("{arguments.a}").render_header(injected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("/x/{session}", "unknown name 'session'"),
        ("/x/{session_id", "unclosed"),
        ("/x/session_id}", "unmatched"),
        ("/x/{session_id.part}", "only arguments have parts"),
        ("/x/{arguments.a.b}", "bad placeholder"),
        ("/x/{}", "bad placeholder"),
    ],
)
def test_malformed_templates_fail_when_compiled(text: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        parse(text)


def test_the_context_has_every_documented_name() -> None:
    assert CONTEXT["action_type"] == "refund" and CONTEXT["tier"] == "auto" and CONTEXT["executed_by"] == "system"
    assert CONTEXT["decided_at"].startswith("2026-03-02T09:00:00")
