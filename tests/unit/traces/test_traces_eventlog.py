"""Event-log import: counts on the real logs, no label leakage, derived schema, CSV via a mapping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from selective_autonomy.schemas.event_parts import ActionTier
from selective_autonomy.schemas.process import ValueType
from selective_autonomy.traces.errors import MappingError
from selective_autonomy.traces.eventlog import (
    END_ACTION,
    RECENT_ACTIONS,
    EventTable,
    derive_process_schema,
    iter_cases,
    normalize_events,
    open_case_horizon,
    read_event_log,
)
from selective_autonomy.traces.format import Case
from selective_autonomy.traces.mapping import EventLogMapping, load_mapping
from selective_autonomy.traces.validate import case_violations

from .support import UI_LOG

HELPDESK_CASES, HELPDESK_EVENTS = 4_580, 21_348
HELPDESK_OPEN_AT_END = 94  # last event within the 95th percentile gap (43 days) of the log's end
BPI_CASES, BPI_EVENTS = 9_658, 72_413


def test_full_helpdesk_counts(helpdesk_path: Path) -> None:
    table = read_event_log(helpdesk_path, load_mapping("helpdesk"))
    cases = list(iter_cases(table))
    steps = sum(len(case.steps) for case in cases)
    print(f"helpdesk: cases={len(cases)} events={table.n_events} steps={steps}")
    assert (table.n_cases, table.n_events, table.dropped_events) == (HELPDESK_CASES, HELPDESK_EVENTS, 0)
    assert len(cases) == HELPDESK_CASES
    ended = sum(case.ended for case in cases)
    assert ended == HELPDESK_CASES - HELPDESK_OPEN_AT_END
    assert steps == HELPDESK_EVENTS + ended  # one step per event plus close_chat per case that ended
    horizon = open_case_horizon(table)
    assert horizon is not None and timedelta(days=40) < horizon[1] < timedelta(days=46)
    for case in cases:
        assert case.ended == (horizon[0] - case.steps[-1].timestamp >= horizon[1])
    schema = derive_process_schema(table)
    assert len(schema.controls) == 14
    assert {case.process_id for case in cases} == {"helpdesk"}


def test_full_bpi2012w_counts(bpi_path: Path) -> None:
    table = read_event_log(bpi_path, load_mapping("bpi2012w"))
    print(f"bpi2012w: cases={table.n_cases} events={table.n_events}")
    assert (table.n_cases, table.n_events, table.dropped_events) == (BPI_CASES, BPI_EVENTS, 0)
    schema = derive_process_schema(table)
    assert len(schema.controls) == 6
    assert schema.field("amount_req") is not None and schema.field("amount_req").type is ValueType.integer  # type: ignore[union-attr]
    first = next(iter_cases(table))
    assert isinstance(first.steps[0].state.fields["amount_req"], int)
    assert first.steps[0].state.fields["reg_date"] <= first.started_at.isoformat()  # type: ignore[operator]


def test_slice_is_the_first_cases_in_log_order(helpdesk_table: EventTable, helpdesk_cases: list[Case]) -> None:
    assert helpdesk_table.n_cases == len(helpdesk_cases) == 200
    assert helpdesk_cases[0].case_id == "Case3608"  # the first trace of the file


def test_each_case_is_sorted_and_ends_with_close_chat(helpdesk_cases: list[Case]) -> None:
    for case in helpdesk_cases:
        times = [step.timestamp for step in case.steps]
        assert times == sorted(times)
        assert case.started_at == times[0]
        assert case.steps[-1].action.action_type == END_ACTION
        assert case.steps[-1].timestamp == case.steps[-2].timestamp
        assert all(step.action.action_type != END_ACTION for step in case.steps[:-1])


def test_no_label_leakage(helpdesk_cases: list[Case]) -> None:
    """A state shows earlier actions and the previous resource only, never the step's own."""
    checked_unseen = 0
    for case in helpdesk_cases:
        for i, step in enumerate(case.steps):
            previous = [s.action for s in case.steps[:i]]
            assert step.state.recent_actions == previous[-RECENT_ACTIONS:]
            expected_resource = case.steps[i - 1].operator_id if i else None
            assert step.state.fields == {"resource": expected_resource}
            if step.action not in previous:
                assert step.action not in step.state.recent_actions
                assert step.action.action_type not in step.state.fields.values()
                checked_unseen += 1
    assert checked_unseen > 500


def test_derived_schema_validates_every_imported_action(helpdesk_table: EventTable, helpdesk_cases: list[Case]) -> None:
    schema = derive_process_schema(helpdesk_table)
    names = set(schema.action_names)
    assert all(step.action.action_type in names for case in helpdesk_cases for step in case.steps)
    assert case_violations(schema, helpdesk_cases) == []
    assert all(control.tier is ActionTier.critical for control in schema.controls)
    resource = schema.field("resource")
    assert resource is not None and resource.type is ValueType.enum
    assert [c.id for c in schema.business_clusters] == ["helpdesk_ticket"]
    assert schema.controls == sorted(schema.controls, key=lambda spec: spec.name)


CSV_ROWS = """ticket_id,activity,finished_at,agent,status,channel,priority,customer_email,queue
T2,Open,2024-03-02 10:00:00,ann,complete,phone,,b@example.com,
T1,Answer,2024-03-01 09:30:00,bob,complete,chat,high,a@example.com,L2
T1,Answer,2024-03-01 09:10:00,bob,start,chat,,a@example.com,
T1,Open,2024-03-01 09:00:00,ann,complete,chat,low,a@example.com,L1
T1,Refund,2024-03-01 11:00:00,cid,complete,chat,,a@example.com,
T2,Answer,2024-03-02 10:05:00,ann,complete,phone,low,b@example.com,L1
"""


def _csv_table(tmp_path: Path, text: str = CSV_ROWS) -> EventTable:
    path = tmp_path / "log.csv"
    path.write_text(text)
    return read_event_log(path, load_mapping("csv_example"))


def test_csv_import_with_the_example_mapping(tmp_path: Path) -> None:
    table = _csv_table(tmp_path)
    cases = list(iter_cases(table))
    print(f"csv: cases={len(cases)} steps={sum(len(c.steps) for c in cases)}")
    assert [c.case_id for c in cases] == ["T2", "T1"]  # log order of first appearance
    t1 = cases[1]
    assert [s.action.action_type for s in t1.steps] == ["Open", "Answer", "Refund", END_ACTION]  # start row dropped
    # Europe/Rome is UTC+1 in March.
    assert t1.started_at == datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
    assert t1.business_cluster == "chat" and t1.attributes == {"channel": "chat", "customer_email": "a@example.com"}
    first, second, third, end = (s.state.fields for s in t1.steps)
    assert first == {
        "channel": "chat",
        "customer_email": "a@example.com",
        "priority": None,
        "queue": None,
        "resource": None,
    }
    assert second["priority"] == "low" and second["queue"] == "L1" and second["resource"] == "ann"
    assert third["priority"] == "high" and third["resource"] == "bob"
    assert end["priority"] == "high" and end["queue"] == "L2" and end["resource"] == "cid"  # nulls keep the latest
    assert t1.steps[1].operator_id == "bob"

    schema = derive_process_schema(table)
    assert schema.action("Refund").tier is ActionTier.approval_required  # type: ignore[union-attr]
    assert schema.action("Open").tier is ActionTier.critical  # type: ignore[union-attr]
    assert schema.pii_fields == {"customer_email"}
    assert [c.id for c in schema.business_clusters] == ["chat", "phone"]
    assert schema.field("priority").enum == ["high", "low"]  # type: ignore[union-attr]
    assert case_violations(schema, cases) == []


def test_a_case_cut_off_by_the_end_of_the_log_gets_no_close(tmp_path: Path) -> None:
    """T2's last event is 5 minutes before the log's end, well inside the gaps between events of a
    case: it may still have been open, so no close_chat is invented for it; T1 ended long before."""
    t2, t1 = iter_cases(_csv_table(tmp_path))
    assert (t1.ended, t2.ended) == (True, False)
    assert [s.action.action_type for s in t2.steps] == ["Open", "Answer"]
    mapping = load_mapping("csv_example").model_copy(update={"open_case_quantile": None})
    path = tmp_path / "log.csv"
    every_case_ended = list(iter_cases(read_event_log(path, mapping)))
    assert [c.steps[-1].action.action_type for c in every_case_ended] == [END_ACTION, END_ACTION]


def test_a_slice_keeps_the_whole_logs_end(helpdesk_path: Path) -> None:
    """The first cases of a slice are not open just because the slice ends with them."""
    table = read_event_log(helpdesk_path, load_mapping("helpdesk"), limit_cases=50)
    assert table.log_end is not None and table.log_end > datetime(2013, 12, 1, tzinfo=UTC)
    assert all(case.ended for case in iter_cases(table))


def test_changing_an_event_never_changes_the_state_before_it(tmp_path: Path) -> None:
    """Perturb T1's third event (activity, agent, event attributes): states up to it stay identical."""
    original = list(iter_cases(_csv_table(tmp_path)))[1]
    before = "T1,Refund,2024-03-01 11:00:00,cid,complete,chat,,"
    after = "T1,Escalate,2024-03-01 11:00:00,dan,complete,chat,urgent,"
    changed_rows = CSV_ROWS.replace(before, after)
    changed = list(iter_cases(_csv_table(tmp_path, changed_rows)))[1]
    assert changed.steps[2].action.action_type == "Escalate"
    assert [s.state for s in changed.steps[:3]] == [s.state for s in original.steps[:3]]
    assert changed.steps[3].state != original.steps[3].state


def test_numeric_strings_become_numbers() -> None:
    raw = pl.DataFrame(
        {
            "case": ["a", "a", "b"],
            "act": ["x", "y", "x"],
            "ts": [datetime(2024, 1, 1, h) for h in (1, 2, 3)],
            "amount": ["100", "100", "250"],
            "score": ["1.5", "2", None],
        }
    )
    mapping = EventLogMapping(
        process_id="p",
        case_id="case",
        activity="act",
        timestamp="ts",
        resource=None,
        case_attributes=["amount"],
        event_attributes=["score"],
    )
    table = normalize_events(raw, mapping)
    assert table.field_types == {"amount": ValueType.integer, "score": ValueType.number}
    cases = list(iter_cases(table))
    assert cases[0].steps[1].state.fields == {"amount": 100, "score": 1.5}
    assert "resource" not in cases[0].steps[1].state.fields
    schema = derive_process_schema(table)
    assert [(f.name, f.type) for f in schema.fields] == [("amount", ValueType.integer), ("score", ValueType.number)]


def test_missing_column_names_the_columns(helpdesk_path: Path) -> None:
    mapping = load_mapping("helpdesk").model_copy(update={"activity": "no_such_column"})
    with pytest.raises(MappingError, match="no_such_column"):
        read_event_log(helpdesk_path, mapping, limit_cases=5)


def test_mapping_errors() -> None:
    with pytest.raises(MappingError, match="built-in"):
        load_mapping("no-such-mapping")
    with pytest.raises(MappingError, match="mapped twice"):
        EventLogMapping.from_yaml("process_id: p\ncase_attributes: [resource]\n")
    with pytest.raises(MappingError, match="invalid"):
        EventLogMapping.from_yaml("process_id: p\nunknown_key: 1\n")


def test_shipped_mappings_load() -> None:
    for name in ("helpdesk", "bpi2012w", "csv_example", "ui_log_example"):
        assert load_mapping(name).process_id == name


def test_string_columns_are_typed_from_their_values() -> None:
    raw = pl.DataFrame(
        {
            "case": ["a", "a"],
            "act": ["x", "y"],
            "ts": ["2024-01-01T10:00:00+02:00", "2024-01-01T11:00:00+02:00"],
            "vip": ["True", "false"],
            "opened": ["2024-01-01 08:00:00", "2024-01-01 08:30:00"],
            "zip": ["01234", "01234"],
            "note": ["late", None],
        }
    )
    mapping = EventLogMapping.model_validate(
        {
            "process_id": "p",
            "case_id": "case",
            "activity": "act",
            "timestamp": "ts",
            "resource": None,
            "case_attributes": ["vip", "opened", {"column": "zip", "type": "string"}, "note"],
        }
    )
    table = normalize_events(raw, mapping)
    assert table.field_types == {
        "vip": ValueType.boolean,
        "opened": ValueType.datetime,
        "zip": ValueType.string,
        "note": ValueType.string,
    }
    case = next(iter_cases(table))
    assert case.started_at == datetime(2024, 1, 1, 8, 0, tzinfo=UTC)  # +02:00 offset honoured
    assert case.steps[0].state.fields == {
        "vip": True,
        "opened": "2024-01-01T08:00:00+00:00",
        "zip": "01234",
        "note": "late",
    }
    schema = derive_process_schema(table)
    assert [(f.name, f.type) for f in schema.fields] == [
        ("vip", ValueType.boolean),
        ("opened", ValueType.datetime),
        ("zip", ValueType.enum),
        ("note", ValueType.enum),
    ]
    assert case_violations(schema, [case]) == []


def test_a_ui_log_names_an_action_by_event_type_and_target(tmp_path: Path) -> None:
    """The shipped UI-log mapping joins eventType and target.name: 'click | Submit'. A missing or blank
    target leaves the event type alone; a row with neither part has no activity and is dropped."""
    path = tmp_path / "ui.csv"
    path.write_text(UI_LOG)
    mapping = load_mapping("ui_log_example")
    assert mapping.activity_columns == ("eventType", "target.name")
    table = read_event_log(path, mapping)
    assert table.dropped_events == 1
    s1, s2 = iter_cases(table)
    assert [s.action.action_type for s in s1.steps] == [
        "load",
        "click | Customer",
        "change | Customer",
        "scroll",
        "click | Submit",
        END_ACTION,
    ]
    assert [s.action.action_type for s in s2.steps] == ["load", "click | Cancel"]  # open at the log's end
    assert s1.steps[4].state.fields == {"url": "https://crm.example/form?page=2", "resource": "ann"}
    assert s1.steps[0].timestamp == datetime(2024, 5, 2, 9, 0, 0, 120_000, tzinfo=UTC)
    schema = derive_process_schema(table)
    assert schema.action("click | Submit").tier is ActionTier.approval_required  # type: ignore[union-attr]
    assert schema.action("click | Cancel").tier is ActionTier.critical  # type: ignore[union-attr]
    assert case_violations(schema, [s1, s2]) == []
    other = mapping.model_copy(update={"activity_separator": ": "})
    assert next(iter_cases(read_event_log(path, other))).steps[1].action.action_type == "click: Customer"


def test_an_activity_that_cannot_be_an_action_type_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ui.csv"
    path.write_text(UI_LOG.replace("click,Submit", "click,Save/Close"))
    with pytest.raises(MappingError, match=r"cannot be action types.*'click \| Save/Close'"):
        read_event_log(path, load_mapping("ui_log_example"))


def test_composite_activity_mapping_errors() -> None:
    with pytest.raises(MappingError, match="at least one column"):
        EventLogMapping.from_yaml("process_id: p\nactivity: []\n")
    with pytest.raises(MappingError, match="twice"):
        EventLogMapping.from_yaml("process_id: p\nactivity: [a, a]\n")
    with pytest.raises(MappingError, match="activity_separator"):
        EventLogMapping.from_yaml("process_id: p\nactivity: [a, b]\nactivity_separator: /\n")
    with pytest.raises(MappingError, match="not in the log"):
        normalize_events(
            pl.DataFrame({"case": ["a"], "a": ["x"], "ts": [datetime(2024, 1, 1)]}),
            EventLogMapping(process_id="p", case_id="case", activity=["a", "b"], timestamp="ts", resource=None),
        )
