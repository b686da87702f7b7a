"""The default XES mapping: the built-in mapping's cases from standard keys, nothing that encodes the future."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from selective_autonomy.schemas.process import ValueType
from selective_autonomy.traces.errors import MappingError
from selective_autonomy.traces.eventlog import (
    END_ACTION,
    XES_TIMEZONE,
    derive_process_schema,
    iter_cases,
    normalize_events,
    read_event_log,
    read_xes,
)
from selective_autonomy.traces.mapping import EventLogMapping, load_mapping
from selective_autonomy.traces.validate import case_violations
from selective_autonomy.traces.xes_mapping import (
    default_xes_mapping,
    future_encoding_reason,
    process_id_from_path,
)

from .support import SAMPLE, assert_same_cases


def test_default_mapping_gives_the_builtin_cases_on_the_sample() -> None:
    default = list(iter_cases(read_event_log(SAMPLE)))
    builtin = list(iter_cases(read_event_log(SAMPLE, load_mapping("helpdesk"))))
    assert_same_cases(default, builtin)
    assert [c.case_id for c in default] == [f"Case{i}" for i in range(1, 7)]
    case1, case2 = default[0], default[1]
    # The 'start' event of "Take in charge ticket" is dropped: one action, when it completes.
    assert [s.action.action_type for s in case1.steps] == [
        "Assign seriousness",
        "Take in charge ticket",
        "Resolve ticket",
        "Closed",
        END_ACTION,
    ]
    assert case1.steps[1].timestamp == datetime(2012, 3, 2, 9, 5, tzinfo=UTC)  # 10:05+01:00
    assert [s.action.action_type for s in case2.steps][:3] == ["Assign seriousness", "Resolve ticket", "Closed"]
    assert all(step.state.fields.keys() == {"resource"} for case in default for step in case.steps)
    assert default[0].process_id == "helpdesk_sample"


def test_default_mapping_gives_the_builtin_cases_on_the_helpdesk_log(helpdesk_path: Path) -> None:
    default_table = read_event_log(helpdesk_path)
    builtin_table = read_event_log(helpdesk_path, load_mapping("helpdesk"))
    default, builtin = list(iter_cases(default_table)), list(iter_cases(builtin_table))
    assert len(default) == 4_580 and sum(len(c.steps) for c in default) == 25_834
    assert_same_cases(default, builtin)
    mine, theirs = derive_process_schema(default_table), derive_process_schema(builtin_table)
    assert (mine.fields, mine.controls) == (theirs.fields, theirs.controls)


def test_default_mapping_leaves_out_the_future_and_the_constant() -> None:
    inferred = default_xes_mapping(read_xes(SAMPLE), "helpdesk", source=SAMPLE.name)
    assert inferred.mapping.case_attributes == []
    assert set(inferred.excluded) == {"case:variant", "case:variant-index", "case:creator"}
    assert "whole activity sequence" in inferred.excluded["case:variant-index"]
    assert inferred.unmapped_event_attributes == ("Activity", "Resource")
    mapping = inferred.mapping
    assert (mapping.case_id, mapping.activity, mapping.timestamp) == (
        "case:concept:name",
        "concept:name",
        "time:timestamp",
    )
    assert (mapping.resource, mapping.lifecycle, mapping.keep_transitions) == (
        "org:resource",
        "lifecycle:transition",
        ["complete"],
    )


TRACE_ATTRIBUTES_XES = """<?xml version="1.0" encoding="UTF-8"?>
<log>
  <trace>
    <string key="concept:name" value="A"/>
    <string key="channel" value="phone"/>
    <string key="resource" value="desk 1"/>
    <int key="amount" value="250"/>
    <date key="opened" value="2024-01-01T08:00:00.000+00:00"/>
    <string key="outcome" value="refunded"/>
    <date key="EndDate" value="2024-01-03T09:00:00.000+00:00"/>
    <string key="Status" value="closed"/>
    <float key="lead_time" value="49.0"/>
    <string key="VariantId" value="v7"/>
    <string key="source" value="export tool"/>
    <event>
      <string key="concept:name" value="Open"/>
      <date key="time:timestamp" value="2024-01-01T09:00:00.000+00:00"/>
      <string key="priority" value="high"/>
    </event>
    <event>
      <string key="concept:name" value="Refund"/>
      <date key="time:timestamp" value="2024-01-03T09:00:00.000+00:00"/>
    </event>
  </trace>
  <trace>
    <string key="concept:name" value="B"/>
    <string key="channel" value="chat"/>
    <string key="resource" value="desk 2"/>
    <int key="amount" value="90"/>
    <date key="opened" value="2024-02-01T08:00:00.000+00:00"/>
    <string key="outcome" value="answered"/>
    <date key="EndDate" value="2024-02-01T10:00:00.000+00:00"/>
    <string key="Status" value="closed"/>
    <float key="lead_time" value="1.0"/>
    <string key="VariantId" value="v2"/>
    <string key="source" value="export tool"/>
    <event>
      <string key="concept:name" value="Open"/>
      <date key="time:timestamp" value="2024-02-01T09:00:00.000+00:00"/>
    </event>
  </trace>
</log>
"""


def test_trace_attributes_known_at_the_start_become_fields(tmp_path: Path) -> None:
    """A log with no resource and no lifecycle: every trace attribute is offered unless its name says it
    encodes the case's future or it never varies; 'resource' is taken by no resource column here."""
    path = tmp_path / "tickets.xes"
    path.write_text(TRACE_ATTRIBUTES_XES)
    inferred = default_xes_mapping(read_xes(path), process_id_from_path(path), source=path.name)
    mapping = inferred.mapping
    assert (mapping.resource, mapping.lifecycle) == (None, None)
    assert [a.column for a in mapping.case_attributes] == [
        "case:amount",
        "case:channel",
        "case:opened",
        "case:resource",
    ]
    assert set(inferred.excluded) == {
        "case:outcome",
        "case:EndDate",
        "case:Status",
        "case:lead_time",
        "case:VariantId",
        "case:source",
    }
    assert inferred.unmapped_event_attributes == ("priority",)
    table = normalize_events(read_xes(path), mapping, naive_timezone=XES_TIMEZONE)
    first = next(iter_cases(table))
    assert first.steps[0].state.fields == {
        "amount": 250,
        "channel": "phone",
        "opened": "2024-01-01T08:00:00+00:00",
        "resource": "desk 1",
    }
    schema = derive_process_schema(table)
    assert {f.name: f.type for f in schema.fields} == {
        "amount": ValueType.integer,
        "channel": ValueType.enum,
        "opened": ValueType.datetime,
        "resource": ValueType.enum,
    }
    assert case_violations(schema, list(iter_cases(table))) == []
    assert schema.process_id == "tickets"


def test_a_trace_attribute_named_like_the_resource_field_is_renamed() -> None:
    raw = pl.DataFrame(
        {
            "case:concept:name": ["a", "a", "b"],
            "concept:name": ["x", "y", "x"],
            "time:timestamp": [datetime(2024, 1, 1, h) for h in (1, 2, 3)],
            "org:resource": ["ann", "bob", "ann"],
            "case:resource": ["r1", "r1", "r2"],
        }
    )
    mapping = default_xes_mapping(raw, "p").mapping
    assert [(a.column, a.field_name) for a in mapping.case_attributes] == [("case:resource", "case_resource")]
    case = next(iter_cases(normalize_events(raw, mapping)))
    assert case.steps[1].state.fields == {"case_resource": "r1", "resource": "ann"}


def test_without_complete_events_every_event_is_kept() -> None:
    raw = pl.DataFrame(
        {
            "case:concept:name": ["a", "a"],
            "concept:name": ["x", "y"],
            "time:timestamp": [datetime(2024, 1, 1, 1), datetime(2024, 1, 1, 2)],
            "lifecycle:transition": ["start", "start"],
        }
    )
    inferred = default_xes_mapping(raw, "p")
    assert inferred.mapping.lifecycle is None and "every event is kept" in inferred.notes[0]
    assert normalize_events(raw, inferred.mapping).n_events == 2


def test_a_log_without_standard_keys_needs_a_mapping(tmp_path: Path) -> None:
    raw = pl.DataFrame({"case:concept:name": ["a"], "concept:name": ["x"], "when": [datetime(2024, 1, 1)]})
    with pytest.raises(MappingError, match="time:timestamp"):
        default_xes_mapping(raw, "p")
    csv = tmp_path / "log.csv"
    csv.write_text("case,act,ts\na,x,2024-01-01 10:00:00\n")
    with pytest.raises(MappingError, match="CSV"):
        read_event_log(csv)


@pytest.mark.parametrize(
    ("column", "excluded"),
    [
        ("case:variant", True),
        ("case:variant-index", True),
        ("case:VariantId", True),
        ("case:outcome", True),
        ("case:label", True),
        ("case:EndDate", True),
        ("case:end_time", True),
        ("case:closedAt", True),
        ("case:lead_time", True),
        ("case:ThroughputTime", True),
        ("case:Status", True),
        ("case:AMOUNT_REQ", False),
        ("case:REG_DATE", False),
        ("case:channel", False),
        ("case:vendor", False),  # "end" inside a word is not the word "end"
        ("case:last_name", False),
    ],
)
def test_future_encoding_names(column: str, excluded: bool) -> None:
    assert (future_encoding_reason(column) is not None) == excluded


def test_process_id_from_path() -> None:
    assert process_id_from_path("/x/Helpdesk.xes.gz") == "helpdesk"
    assert process_id_from_path("BPI Challenge 2012.xes") == "bpi_challenge_2012"
    assert process_id_from_path("..xes") == "eventlog"


def test_the_printed_mapping_reads_back_to_the_same_mapping() -> None:
    inferred = default_xes_mapping(read_xes(SAMPLE), "helpdesk_sample", source=SAMPLE.name)
    text = inferred.to_yaml()
    assert "#   case:variant: names the trace's variant" in text
    assert EventLogMapping.from_yaml(text) == inferred.mapping
    for name in ("helpdesk", "bpi2012w", "csv_example", "ui_log_example"):
        mapping = load_mapping(name)
        assert EventLogMapping.from_yaml(mapping.to_yaml()) == mapping


def test_the_integration_guides_ui_log_mapping_loads() -> None:
    guide = Path(__file__).parents[3] / "docs" / "integration-guide.md"
    blocks = [part.split("```")[0] for part in guide.read_text().split("```yaml\n")[1:]]
    (block,) = [b for b in blocks if b.startswith("# ui-log.yaml")]
    mapping = EventLogMapping.from_yaml(block, source="docs/integration-guide.md")
    assert mapping.activity_columns == ("eventType", "target.name")
