"""Logs and checks shared by the trace tests: they ship with the tests, so they run on any clone."""

from __future__ import annotations

from pathlib import Path

from selective_autonomy.traces.format import Case

SAMPLE = Path(__file__).parent / "data" / "helpdesk_sample.xes"
"""Six hand-made traces in the Helpdesk log's shape (Disco export: variant, variant-index, creator)."""


def assert_same_cases(default: list[Case], builtin: list[Case]) -> None:
    """Case for case: ids, start, end, attributes, and per step the action, time, operator and state.

    Only the process id (from the file name) and the business cluster (a name the built-in mapping
    gives) may differ.
    """
    assert [c.case_id for c in default] == [c.case_id for c in builtin]
    for mine, theirs in zip(default, builtin, strict=True):
        assert (mine.started_at, mine.ended, mine.attributes) == (theirs.started_at, theirs.ended, theirs.attributes)
        assert [s.action.action_type for s in mine.steps] == [s.action.action_type for s in theirs.steps]
        assert [s.timestamp for s in mine.steps] == [s.timestamp for s in theirs.steps]
        assert mine.steps == theirs.steps  # states (fields, recent actions) and operators too


UI_LOG = """session,timestamp,user,eventType,target.name,target.tagName,url
s1,2024-05-02T09:00:00.120Z,ann,load,,,https://crm.example/form
s1,2024-05-02T09:00:05.000Z,ann,click,Customer,INPUT,https://crm.example/form
s1,2024-05-02T09:00:09.500Z,ann,change,Customer,INPUT,https://crm.example/form
s1,2024-05-02T09:00:12.000Z,ann,scroll,  ,,https://crm.example/form?page=2
s1,2024-05-02T09:00:13.000Z,ann,,,,https://crm.example/form?page=2
s1,2024-05-02T09:00:15.000Z,ann,click,Submit,BUTTON,https://crm.example/form?page=2
s2,2024-05-02T10:00:00.000Z,bob,load,,,https://crm.example/form
s2,2024-05-02T10:00:04.000Z,bob,click,Cancel,BUTTON,https://crm.example/form
"""
