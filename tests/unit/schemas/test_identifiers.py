"""The identifier rules: what passes, what is refused, and that the contract and the process-schema
format apply them (a hostile id never gets as far as a path)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from selective_autonomy.schemas.event_parts import Action, UIState
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.schemas.identifiers import (
    InvalidIdentifier,
    is_name,
    is_process_id,
    process_dir_name,
)
from selective_autonomy.schemas.process import BusinessCluster, ProcessSchema, UIField

HOSTILE = ["", ".", "..", "../etc", "a/b", "a\\b", "a\x00b", "\x00", "a\nb", "a\x7f", "x" * 129]


@pytest.mark.parametrize(
    "process_id", ["billing", "helpdesk", "bpi2012w", "sgd.Banks_1", "abcd", "csv_example", "a-b.c_d", "x" * 128]
)
def test_shipped_process_ids_are_valid(process_id: str) -> None:
    assert is_process_id(process_id) and process_dir_name(process_id) == process_id


@pytest.mark.parametrize("process_id", [*HOSTILE, ".hidden", "-x", "a b", "a:b", "é", "abc\n"])
def test_hostile_process_ids_are_refused_before_any_path(process_id: str) -> None:
    assert not is_process_id(process_id)
    with pytest.raises(InvalidIdentifier):
        process_dir_name(process_id)
    with pytest.raises(ValidationError):
        ProcessSchema(process_id=process_id)


@pytest.mark.parametrize(
    "name",
    ["Take in charge ticket", "W_Completeren aanvraag", "send_text", "pull-up-account", "é-ü", "VERIFIED", "x" * 128],
)
def test_names_from_real_logs_are_valid(name: str) -> None:
    assert is_name(name)
    Action(action_type=name)
    UIField(name=name)
    BusinessCluster(id=name)


@pytest.mark.parametrize("name", [*HOSTILE, " lead", ".x", "a\u0085b"])
def test_hostile_names_are_refused_in_the_contract_and_the_schema_format(name: str) -> None:
    assert not is_name(name)
    for build in (
        lambda: Action(action_type=name),
        lambda: Action(action_type="go", arguments={name: 1}),
        lambda: UIState(fields={name: 1}),
        lambda: UIState(controls=[name]),
        lambda: UIField(name=name),
        lambda: BusinessCluster(id=name),
    ):
        with pytest.raises(ValidationError):
            build()


@given(st.text(max_size=300))
def test_the_contract_and_the_predicates_agree(text: str) -> None:
    def accepted(**ids: str) -> bool:
        try:
            UIStateChanged.model_validate(
                {"session_id": "s", "process_id": "p", "business_cluster": "c", "state_version": 0, **ids}
            )
        except ValidationError:
            return False
        return True

    assert accepted(process_id=text) == is_process_id(text)
    assert accepted(business_cluster=text) == is_name(text)
    session_ok = 0 < len(text) <= 256 and not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in text)
    assert accepted(session_id=text) == session_ok
