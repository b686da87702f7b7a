"""Confluent wire format and bare Avro encoding, schema evolution, and decode errors."""

from __future__ import annotations

import io
import json
import struct

import fastavro
import pytest

from selective_autonomy.config import WireFormat
from selective_autonomy.errors import DecodeError
from selective_autonomy.schemas import contracts
from selective_autonomy.schemas.event_parts import Action, DeferralReason, Stage, UIState, Verdict
from selective_autonomy.schemas.events import CopilotFeedback, DeadLetter, OperatorDeferral, UIStateChanged
from selective_autonomy.streams.schema_ids import PackageSchemaIds
from selective_autonomy.streams.serialization import AvroCodec

EVENT = UIStateChanged(
    session_id="s1", process_id="p", business_cluster="c", state_version=2, ui_state=UIState(fields={"a": 1})
)


def test_confluent_header_carries_the_package_schema_id() -> None:
    data = AvroCodec().encode(EVENT, "ui.state")
    magic, schema_id = struct.unpack(">bI", data[:5])
    assert magic == 0
    assert schema_id == PackageSchemaIds().id_for("UIStateChanged", "ui.state-value") == 1001
    assert AvroCodec().decode(data, UIStateChanged) == EVENT


def test_bare_avro_round_trips() -> None:
    codec = AvroCodec(WireFormat.avro)
    assert codec.decode(codec.encode(EVENT), UIStateChanged) == EVENT


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (None, "tombstone"),
        (b"\x00\x00", "too short"),
        (b"\x07\x00\x00\x03\xe9abc", "magic byte"),
        (b"\x00\x00\x00\x99\x99abc", "unknown schema id"),
        (b"\x00\x00\x00\x03\xe9\xff\xff\xff", "undecodable"),
    ],
)
def test_malformed_bytes_raise_decode_error_with_reason(data: bytes | None, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        AvroCodec().decode(data, UIStateChanged)


def test_a_record_of_another_contract_is_refused() -> None:
    letter = DeadLetter(original=b"x", topic="t", partition=0, offset=0, error="e", error_type="E")
    with pytest.raises(DecodeError, match="is a DeadLetter, expected a UIStateChanged"):
        AvroCodec().decode(AvroCodec().encode(letter), UIStateChanged)


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(DecodeError, match="trailing bytes"):
        AvroCodec().decode(AvroCodec().encode(EVENT) + b"\x00", UIStateChanged)


def test_decoded_but_invalid_record_is_refused() -> None:
    record = EVENT.to_avro() | {"state_version": -5}
    buffer = io.BytesIO(b"\x00\x00\x00\x03\xe9")
    buffer.seek(5)
    fastavro.schemaless_writer(buffer, contracts.parsed_schema("UIStateChanged"), record)
    with pytest.raises(DecodeError, match="state_version"):
        AvroCodec().decode(buffer.getvalue(), UIStateChanged)


def test_feedback_missing_operator_action_is_refused_on_decode() -> None:
    record = {
        "feedback_id": "f",
        "session_id": "s",
        "process_id": "p",
        "business_cluster": "c",
        "state_version": 1,
        "verdict": "corrected",
        "operator_id": "o",
        "latency_ms": 1,
        "given_at": EVENT.timestamp,
    }
    buffer = io.BytesIO(struct.pack(">bI", 0, PackageSchemaIds().id_for("CopilotFeedback", "")))
    buffer.seek(5)
    fastavro.schemaless_writer(buffer, contracts.parsed_schema("CopilotFeedback"), record)
    with pytest.raises(DecodeError, match="operator's own action"):
        AvroCodec().decode(buffer.getvalue(), CopilotFeedback)


def test_older_writer_schema_without_optional_fields_still_decodes() -> None:
    # Simulates evolution: a v0 writer that did not yet have last_action / last_action_id.
    old = json.loads(json.dumps(contracts.expanded_schema("UIStateChanged")))
    old["fields"] = [f for f in old["fields"] if f["name"] not in ("last_action", "last_action_id")]
    old_parsed = fastavro.parse_schema(old)
    buffer = io.BytesIO()
    record = {k: v for k, v in EVENT.to_avro().items() if k not in ("last_action", "last_action_id")}
    fastavro.schemaless_writer(buffer, old_parsed, record)

    class OldIds(PackageSchemaIds):
        def writer_schema(self, schema_id: int):  # type: ignore[no-untyped-def]
            return ("UIStateChanged", old_parsed) if schema_id == 7 else super().writer_schema(schema_id)

    decoded = AvroCodec(resolver=OldIds()).decode(b"\x00\x00\x00\x00\x07" + buffer.getvalue(), UIStateChanged)
    assert decoded == EVENT


@pytest.mark.parametrize(("record", "v1_id"), [("OperatorDeferral", 1004), ("CopilotFeedback", 1005)])
def test_version_1_records_decode_into_version_2(record: str, v1_id: int) -> None:
    """Records written before v2 (under the v1 id, with the kept v1 schema) still decode: the new
    optional fields come out as null and schema_version says 1."""
    v1 = contracts.historical_schema(record, 1)
    v1_fields = {f["name"] for f in contracts.self_contained_schema(record)["fields"]} - {
        "stage",
        "inclusion_probability",
        "state_at",
    }
    sample = {
        "OperatorDeferral": OperatorDeferral(
            stage=Stage.selective,
            event_id="e",
            session_id="s",
            process_id="p",
            business_cluster="c",
            state_version=3,
            ui_state=EVENT.ui_state,
            reason=DeferralReason.below_threshold,
        ),
        "CopilotFeedback": CopilotFeedback(
            session_id="s",
            process_id="p",
            business_cluster="c",
            state_version=3,
            verdict=Verdict.corrected,
            operator_action=Action(action_type="a"),
            operator_id="o",
            latency_ms=1,
        ),
    }[record]
    buffer = io.BytesIO(struct.pack(">bI", 0, v1_id))
    buffer.seek(5)
    fastavro.schemaless_writer(
        buffer, v1, {k: v for k, v in sample.to_avro().items() if k in v1_fields} | {"schema_version": 1}
    )
    decoded = AvroCodec().decode(buffer.getvalue(), type(sample))
    assert decoded.schema_version == 1
    assert decoded.model_dump(exclude={"schema_version"}) == sample.model_dump(exclude={"schema_version"})
    assert PackageSchemaIds().id_for(record, "") != v1_id  # new records are written under the v2 id


def test_a_v2_enum_symbol_reads_as_the_default_in_a_v1_reader() -> None:
    """An old consumer (v1 reader) meets a v2 deferral reason it does not know: the enum's default."""
    deferral = OperatorDeferral(
        stage=Stage.selective,
        event_id="e",
        session_id="s",
        process_id="p",
        business_cluster="c",
        state_version=3,
        ui_state=EVENT.ui_state,
        reason=DeferralReason.exploration,
    )
    body = AvroCodec().encode(deferral)[5:]
    old = fastavro.schemaless_reader(
        io.BytesIO(body),
        contracts.parsed_schema("OperatorDeferral"),
        contracts.historical_schema("OperatorDeferral", 1),
    )
    assert isinstance(old, dict) and old["reason"] == "unspecified"


@pytest.mark.parametrize(
    ("reason", "stage"),
    [(DeferralReason.copilot_stage, Stage.copilot), (DeferralReason.below_threshold, Stage.selective)],
)
def test_a_v1_deferral_reads_with_the_stage_the_v1_rule_gave_it(reason: DeferralReason, stage: Stage) -> None:
    v1 = contracts.historical_schema("OperatorDeferral", 1)
    v1_fields = {f["name"] for f in v1["fields"]}  # type: ignore[call-overload,index]
    sample = OperatorDeferral(
        stage=stage, event_id="e", session_id="s", process_id="p", business_cluster="c", state_version=3,
        ui_state=EVENT.ui_state, reason=reason,
    )  # fmt: skip
    buffer = io.BytesIO(struct.pack(">bI", 0, 1004))
    buffer.seek(5)
    fastavro.schemaless_writer(
        buffer, v1, {k: v for k, v in sample.to_avro().items() if k in v1_fields} | {"schema_version": 1}
    )
    assert AvroCodec().decode(buffer.getvalue(), OperatorDeferral).stage is stage


def test_a_v2_deferral_must_state_its_stage() -> None:
    record = OperatorDeferral(
        stage=Stage.copilot, event_id="e", session_id="s", process_id="p", business_cluster="c", state_version=3,
        ui_state=EVENT.ui_state, reason=DeferralReason.copilot_stage,
    ).to_avro() | {"stage": None}  # fmt: skip
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, contracts.parsed_schema("OperatorDeferral"), record)
    header = struct.pack(">bI", 0, PackageSchemaIds().id_for("OperatorDeferral", ""))
    with pytest.raises(DecodeError, match="stage"):
        AvroCodec().decode(header + buffer.getvalue(), OperatorDeferral)
