"""The critic-separation measurement's own arithmetic: state features and equal-coverage precision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from bench.critic_separation import STATE_FEATURES, separation, state_features
from selective_autonomy.inference.protocol import PolicySignals
from selective_autonomy.learning.evidence import CriticExample
from selective_autonomy.schemas.event_parts import Action, ActionTier, UIState, Verdict
from selective_autonomy.schemas.events import UIStateChanged

CALL = "W_Nabellen offertes"
T0 = datetime(2012, 1, 2, 9, 0, tzinfo=UTC)


def example(recent: list[str], *, age: timedelta, fields: dict[str, str | int]) -> CriticExample:
    event = UIStateChanged(
        session_id="case-1",
        process_id="bpi2012w",
        business_cluster="loan_application",
        state_version=len(recent),
        timestamp=T0 + age,
        ui_state=UIState(fields=fields, recent_actions=[Action(action_type=a) for a in recent], case_started_at=T0),
    )
    return CriticExample(
        feedback_id="fb-1",
        event=event,
        action=Action(action_type=CALL),
        tier=ActionTier.critical,
        signals=PolicySignals(probability=0.9),
        process_id="bpi2012w",
        business_cluster="loan_application",
        step_index=len(recent),
        verdict=Verdict.accepted,
        label=True,
        given_at=event.timestamp,
        received_at=event.timestamp,
    )


def test_state_features_count_calls_and_the_run_of_calls_and_read_times_from_the_state() -> None:
    recent = [CALL, "W_Completeren aanvraag", CALL, CALL, CALL]
    registered = (T0 - timedelta(days=1)).isoformat()
    row = dict(
        zip(
            STATE_FEATURES,
            state_features(
                example(recent, age=timedelta(days=2, hours=6), fields={"reg_date": registered, "amount_req": 5000}),
                CALL,
            ),
            strict=True,
        )
    )
    assert (row["calls"], row["call_run"], row["step"]) == (4, 3, 5)
    assert row["case_age_d"] == pytest.approx(2.25)
    assert row["since_registration_d"] == pytest.approx(3.25)
    assert (row["hour"], row["weekday"], row["amount"]) == (15.0, 2.0, 5000.0)


def test_state_features_mark_missing_values() -> None:
    row = dict(zip(STATE_FEATURES, state_features(example([], age=timedelta(0), fields={}), CALL), strict=True))
    assert (row["calls"], row["call_run"], row["since_registration_d"], row["amount"]) == (0, 0, -1.0, -1.0)


def test_separation_compares_at_equal_coverage() -> None:
    labels = np.array([True, True, False, True, False, True, True, True, True, False])
    perfect = labels.astype(float) + np.linspace(0, 0.1, 10)
    reversed_ = -perfect
    out = separation(perfect, labels, reversed_)
    assert out["auc"] == 1.0 and out["auc_confidence"] == 0.0
    assert out["top60"] == 1.0  # the 6 best of the perfect score are all accepted
    assert out["top60_confidence"] == pytest.approx(3 / 6)  # the 6 best of the reversed: the 3 rejected first
    assert out["accepted"] == 0.7


def test_separation_of_one_class_reports_only_the_count() -> None:
    assert separation(np.ones(3), np.ones(3, dtype=bool), np.ones(3)) == {"n": 3}
