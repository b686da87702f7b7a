"""Malformed and adversarial ``ui.state`` records, generated with Hypothesis.

Hypothesis draws the cases (what kind, and its bytes or its content); :func:`fuzz_stream` turns them
into an ordered stream of records: valid states get sessions and increasing versions, out-of-order
states get an older version of a session already sent, and everything else is malformed and must
end up in the dead-letter topic. Each malformed case is checked against the worker's own codec at
generation time (a random byte string that happens to decode is drawn again).
"""

from __future__ import annotations

import copy
import io
import json
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import fastavro
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from selective_autonomy.errors import DecodeError
from selective_autonomy.schemas import contracts
from selective_autonomy.schemas.event_parts import Action, Actor, ChatTurn, Speaker, Stage, UIState
from selective_autonomy.schemas.events import DeadLetter, StageChanged, UIStateChanged
from selective_autonomy.streams.serialization import AvroCodec

from .helpers import CLUSTERS, FLOW, PROCESS, ui_state

UI_STATE_ID = 1001
KNOWN_IDS = frozenset(range(1001, 1009))
HUGE_CHARS = 900 * 1024  # well under the 1 MB default message size of librdkafka and aiokafka

CODEC = AvroCodec()
HEADER = struct.Struct(">bI")


@dataclass(frozen=True)
class Drawn:
    """One drawn case before sequencing: its kind and its payload (bytes, or content for states)."""

    kind: str
    value: bytes | None = None
    cluster: str = "retail"
    fields: tuple[tuple[str, Any], ...] = ()
    chat: tuple[str, ...] = ()
    actor: Actor = Actor.system
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class Record:
    """One record to produce, and what the worker must do with it."""

    kind: str
    expect: str  # dead | decide | stale
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    session_id: str = ""
    state_version: int = -1


def decodes(value: bytes | None) -> bool:
    try:
        CODEC.decode(value, UIStateChanged)
    except DecodeError:
        return False
    return True


def _body(event: UIStateChanged | dict[str, Any], schema: Any = None) -> bytes:
    buffer = io.BytesIO()
    record = event.to_avro() if isinstance(event, UIStateChanged) else event
    fastavro.schemaless_writer(buffer, schema or contracts.parsed_schema("UIStateChanged"), record)
    return buffer.getvalue()


def _framed(body: bytes, schema_id: int = UI_STATE_ID, magic: int = 0) -> bytes:
    return HEADER.pack(magic, schema_id) + body


def _variant_schema(change: Callable[[list[dict[str, Any]]], None]) -> Any:
    """The expanded UIStateChanged schema with its field list changed by hand."""
    expanded = copy.deepcopy(contracts.expanded_schema("UIStateChanged"))
    change(expanded["fields"])
    return fastavro.parse_schema(json.loads(json.dumps(expanded)))


def _retype(name: str, avro_type: Any) -> Callable[[list[dict[str, Any]]], None]:
    def change(fields: list[dict[str, Any]]) -> None:
        for field in fields:
            if field["name"] == name:
                field["type"] = avro_type
                field.pop("default", None)

    return change


def _drop(name: str) -> Callable[[list[dict[str, Any]]], None]:
    def change(fields: list[dict[str, Any]]) -> None:
        fields[:] = [f for f in fields if f["name"] != name]

    return change


SAMPLE = ui_state("fuzz", 1, "retail", fields={"plan": "pro", "email": "x@example.org"})
ACTOR_AS_INT = _variant_schema(_retype("actor", "int"))
VERSION_AS_STRING = _variant_schema(_retype("state_version", "string"))
WITHOUT_CLUSTER = _variant_schema(_drop("business_cluster"))
TIMESTAMP_AS_LONG = _variant_schema(_retype("timestamp", "long"))

texts = st.text(max_size=40)
sample_body = _body(SAMPLE)


@st.composite
def invalid_field(draw: st.DrawFn) -> bytes:
    """Valid Avro framed as a UIStateChanged whose values or fields are wrong, encoded by hand."""
    record = SAMPLE.to_avro()
    how = draw(st.sampled_from(["negative_version", "empty_id", "actor_index", "version_string", "no_cluster", "time"]))
    if how == "negative_version":
        record["state_version"] = draw(st.integers(min_value=-(2**63), max_value=-1))
        return _framed(_body(record))
    if how == "empty_id":
        record[draw(st.sampled_from(["session_id", "process_id", "business_cluster", "event_id"]))] = ""
        return _framed(_body(record))
    if how == "actor_index":
        record["actor"] = draw(st.integers(min_value=3, max_value=2**31 - 1))
        return _framed(_body(record, ACTOR_AS_INT))
    if how == "version_string":
        record["state_version"] = draw(texts)
        return _framed(_body(record, VERSION_AS_STRING))
    if how == "no_cluster":
        del record["business_cluster"]
        return _framed(_body(record, WITHOUT_CLUSTER))
    record["timestamp"] = draw(st.sampled_from([2**62, -(2**62), 2**63 - 1]))  # out of datetime's range
    return _framed(_body(record, TIMESTAMP_AS_LONG))


@st.composite
def wrong_record(draw: st.DrawFn) -> bytes:
    """A perfectly valid record of another contract, on ui.state."""
    if draw(st.booleans()):
        event: Any = DeadLetter(
            original=draw(st.binary(max_size=64)), topic=draw(texts), partition=0, offset=0, error="x", error_type="y"
        )
    else:
        event = StageChanged(
            process_id="billing",
            business_cluster=draw(st.sampled_from(CLUSTERS)),
            from_stage=Stage.copilot,
            to_stage=Stage.selective,
            reason=draw(texts),
        )
    return CODEC.encode(event, "ui.state")


# Identifiers an attacker would try: path traversal, separators, NUL and other control characters,
# and lengths past the contract's limits (128 for process ids and names, 256 for session ids).
HOSTILE_IDS = st.one_of(
    st.sampled_from(["..", "../billing", "billing/..", "/etc/passwd", "a\\b", "bill\x00ing", "\x00", ".hidden"]),
    st.text(max_size=20).map(lambda text: text + "\x00"),
    st.text(max_size=20).map(lambda text: "../" + text),
    st.text(max_size=10).map(lambda text: text + "\n" + text),
    st.text(min_size=257, max_size=600),
)
_KEY_MARK = "\u00e9\u00e9key"
"""A field key written as UTF-8 and then overwritten, in the encoded record, with bytes that are not."""


@st.composite
def hostile_identifier(draw: st.DrawFn) -> bytes:
    """A well-framed UIStateChanged whose process, cluster, session, field, control or action id is
    hostile, or whose field key is not UTF-8: the contract refuses every one (a dead letter), so none
    ever reaches the models directory."""
    record = SAMPLE.to_avro()
    where = draw(st.sampled_from(["process_id", "business_cluster", "session_id", "field", "control", "action", "key"]))
    hostile = draw(HOSTILE_IDS)
    if where == "key":
        record["ui_state"]["fields"] = {**record["ui_state"]["fields"], _KEY_MARK: 1}
        body = _body(record)
        mark = _KEY_MARK.encode()
        return _framed(body.replace(mark, b"\xff\xfe" + draw(st.binary(min_size=2, max_size=2)) + mark[4:]))
    if where == "field":
        record["ui_state"]["fields"] = {**record["ui_state"]["fields"], hostile: "x"}
    elif where == "control":
        record["ui_state"]["controls"] = [hostile]
    elif where == "action":
        record["last_action"] = {"action_type": hostile, "arguments": {}}
    else:
        record[where] = hostile
    return _framed(_body(record))


def malformed(kind: str, strategy: st.SearchStrategy[bytes | None]) -> st.SearchStrategy[Drawn]:
    return strategy.filter(lambda value: not decodes(value)).map(lambda value: Drawn(kind, value))


MALFORMED: list[st.SearchStrategy[Drawn]] = [
    malformed("random_bytes", st.binary(max_size=300)),
    malformed("truncated_header", st.binary(max_size=4)),
    malformed(
        "wrong_magic",
        st.integers(min_value=1, max_value=127).map(lambda magic: _framed(sample_body, magic=magic)),
    ),
    malformed(
        "unknown_schema_id",
        st.integers(min_value=0, max_value=2**31 - 1)
        .filter(lambda i: i not in KNOWN_IDS)
        .map(lambda schema_id: _framed(sample_body, schema_id)),
    ),
    malformed(
        "truncated_body",
        st.integers(min_value=0, max_value=len(sample_body) - 1).map(lambda cut: _framed(sample_body[:cut])),
    ),
    malformed("trailing_bytes", st.binary(min_size=1, max_size=32).map(lambda extra: _framed(sample_body) + extra)),
    malformed("wrong_record", wrong_record()),
    malformed("invalid_field", invalid_field()),
    malformed("hostile_identifier", hostile_identifier()),
    st.just(Drawn("tombstone", None)),
    st.builds(
        lambda process, cluster: Drawn(
            "unknown_process",
            _framed(_body(SAMPLE.model_copy(update={"process_id": process, "business_cluster": cluster}))),
        ),
        st.text(min_size=1, max_size=20).filter(lambda p: p != PROCESS.process_id),
        st.sampled_from(CLUSTERS),
    ),
]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False), st.text(max_size=30)
)
garbage_headers = st.lists(
    st.tuples(st.sampled_from(["traceparent", "tracestate", "x-junk"]), st.binary(max_size=60)), max_size=2
)


@st.composite
def valid_state(draw: st.DrawFn, kind: str = "valid") -> Drawn:
    """Content for a valid state: any field values, chat text, actor and cluster, junk headers."""
    fields = draw(st.dictionaries(st.sampled_from(["plan", "email", "customer_name", "note"]), scalars, max_size=4))
    return Drawn(
        kind,
        cluster=draw(st.sampled_from(CLUSTERS)),
        fields=tuple(sorted(fields.items())),
        chat=tuple(draw(st.lists(st.text(max_size=80), max_size=3))),
        actor=draw(st.sampled_from(list(Actor))),
        headers=tuple(draw(garbage_headers)),
    )


CASE = st.one_of(
    st.one_of(*MALFORMED),
    valid_state(),
    valid_state(),  # weight: valid states interleave the malformed ones throughout
    st.just(Drawn("out_of_order")),
)


def draw_cases(count: int, seed_value: int, per_example: int = 50) -> list[Drawn]:
    """``count`` cases from Hypothesis: one ``@given`` run of ``count / per_example`` examples, each a
    list of cases, with a fixed seed (the same cases every run)."""
    out: list[Drawn] = []

    @seed(seed_value)
    @settings(
        max_examples=count // per_example + 1,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(CASE, min_size=per_example, max_size=per_example))
    def collect(cases: list[Drawn]) -> None:
        if len(out) < count:
            out.extend(cases[: count - len(out)])

    collect()
    assert len(out) == count, f"Hypothesis produced {len(out)} of {count} cases"
    return out


def huge_cases(seed_value: int) -> list[Drawn]:
    """Two 900 KB records: one of garbage (dead letter) and one valid state with a 900 KB chat turn
    in the copilot cluster (its deferral carries the whole screen)."""
    out: list[Drawn] = []

    @seed(seed_value)
    @settings(max_examples=1, database=None, deadline=None, phases=[Phase.generate])
    @given(st.binary(min_size=64, max_size=64), st.text(min_size=1, max_size=16))
    def collect(unit: bytes, text: str) -> None:
        garbage = (unit * (HUGE_CHARS // len(unit) + 1))[:HUGE_CHARS]
        chat = (text * (HUGE_CHARS // len(text) + 1))[:HUGE_CHARS]
        out[:] = [Drawn("huge_garbage", garbage), Drawn("huge_valid", cluster="desk", chat=(chat,))]

    collect()
    return out


def bulk_cases(pool: list[Drawn], count: int, rng: random.Random) -> list[Drawn]:
    """More cases from a seeded generator, cheaply: random bytes and byte-level mutations of a
    valid record (those that still decode are drawn again), Hypothesis-drawn valid states reused
    for other sessions, and out-of-order states."""
    valid = [case for case in pool if case.kind == "valid"]
    frame = _framed(sample_body)
    out: list[Drawn] = []
    while len(out) < count:
        roll = rng.random()
        if roll < 0.2:
            out.append(rng.choice(valid))
        elif roll < 0.28:
            out.append(Drawn("out_of_order"))
        else:
            if roll < 0.6:
                value = rng.randbytes(rng.randrange(300))
                kind = "random_bytes"
            else:
                mutated = bytearray(frame)
                for _ in range(rng.randint(1, 4)):
                    position = rng.randrange(len(mutated))
                    how = rng.randrange(3)
                    if how == 0:
                        mutated[position] ^= 1 << rng.randrange(8)
                    elif how == 1:
                        del mutated[position]
                    else:
                        mutated.insert(position, rng.randrange(256))
                value, kind = bytes(mutated), "mutated"
            if not decodes(value):
                out.append(Drawn(kind, value))
    return out


def fuzz_records(total: int, sessions: int, seed_value: int, drawn: int = 2000) -> list[Record]:
    """Exactly ``total`` records: ``drawn`` cases from Hypothesis, the rest in bulk, two huge ones."""
    rng = random.Random(seed_value)
    cases = draw_cases(drawn, seed_value)
    cases += bulk_cases(cases, total - drawn + 200, rng)
    rng.shuffle(cases)
    records = fuzz_stream(cases, sessions, rng)[: total - 2]
    for index, case in enumerate(huge_cases(seed_value)):
        if case.value is not None:
            record = Record(case.kind, "dead", b"huge", case.value)
        else:
            name = f"huge{index}"
            record = Record(
                case.kind,
                "decide",
                name.encode(),
                CODEC.encode(_state(name, 0, case), "ui.state"),
                session_id=name,
                state_version=0,
            )
        records.insert(rng.randrange(len(records)), record)
    return records


def _state(name: str, version: int, case: Drawn) -> UIStateChanged:
    return UIStateChanged(
        event_id=f"{name}-v{version}",
        session_id=name,
        process_id=PROCESS.process_id,
        business_cluster=case.cluster,
        state_version=version,
        actor=case.actor,
        ui_state=UIState(
            fields=dict(case.fields),
            chat_tail=[ChatTurn(speaker=Speaker.customer, text=text) for text in case.chat],
            recent_actions=FLOW[: version % (len(FLOW) + 1)],
        ),
        last_action=Action(action_type="lookup_order", arguments={"order_id": "A1"}) if version else None,
    )


def fuzz_stream(cases: list[Drawn], sessions: int, rng: random.Random) -> list[Record]:
    """Order the cases into records: valid states advance a random session by one version,
    out-of-order ones resend an older version of a session that is already ahead."""
    names = [f"fz{i:04d}" for i in range(sessions)]
    version = dict.fromkeys(names, -1)
    records: list[Record] = []
    for case in cases:
        if case.kind == "out_of_order":
            ahead = [n for n in names if version[n] >= 1]
            if not ahead:
                continue
            name = rng.choice(ahead)
            older = rng.randrange(version[name])
            value = CODEC.encode(ui_state(name, older, "retail"), "ui.state")
            records.append(Record("out_of_order", "stale", name.encode(), value, (), name, older))
        elif case.kind == "valid":
            name = rng.choice(names)
            version[name] += 1
            value = CODEC.encode(_state(name, version[name], case), "ui.state")
            records.append(Record(case.kind, "decide", name.encode(), value, case.headers, name, version[name]))
        else:
            key = rng.choice([None, b"", rng.choice(names).encode(), rng.randbytes(8)])
            records.append(Record(case.kind, "dead", key, case.value))
    return records
