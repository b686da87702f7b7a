"""The console's gauges on /metrics: deferrals waiting and how long, audits pending, per process."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from selective_autonomy.config import ConsoleSettings, Settings, TelemetrySettings
from selective_autonomy.console.app import create_app
from selective_autonomy.console.audits import AuditBook
from selective_autonomy.console.inbox import Inbox
from selective_autonomy.streams.meters import process_meters
from tests.factories import RECENT as T0
from tests.factories import deferral, step


class Clock:
    def __init__(self) -> None:
        self.now = T0.timestamp()

    def __call__(self) -> float:
        return self.now


def samples(text: str) -> dict[tuple[str, str], float]:
    return {
        (s.name, s.labels.get("process", "")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("selauto_console_")
    }


def test_waiting_deferrals_their_age_and_pending_audits_per_process() -> None:
    clock = Clock()
    inbox = Inbox(clock=clock)
    inbox.on_deferral(deferral("s1", 3))  # deferred at T0
    later = T0 + timedelta(seconds=60)
    inbox.on_deferral(deferral("s2", 1, at=later))
    inbox.on_deferral(deferral("s3", 2, process="onboarding", at=later))
    clock.now += 60
    audits = AuditBook(rate=1.0, clock=clock)
    audits.on_executed(step("u1", 2))
    meters = process_meters(TelemetrySettings(service_name="console"))
    app = create_app(
        Settings(),
        console=ConsoleSettings(operators={"alice": SecretStr("alice-token-1")}),
        inbox=inbox,
        audits=audits,
        start_feed=False,
        clock=clock,
        meter_provider=meters.provider,
        exposition=meters.exposition,
    )
    with TestClient(app) as client:
        clock.now += 30
        first = client.get("/metrics")  # no credentials: open, like /healthz
        assert first.status_code == 200
        assert samples(first.text) == {
            ("selauto_console_deferrals_waiting", "helpdesk"): 2,
            ("selauto_console_deferrals_waiting", "onboarding"): 1,
            ("selauto_console_deferrals_oldest_wait_seconds", "helpdesk"): 90,
            ("selauto_console_deferrals_oldest_wait_seconds", "onboarding"): 30,
            ("selauto_console_audits_pending", "helpdesk"): 1,
            ("selauto_console_audits_pending", "onboarding"): 0,
        }
        # Once answered elsewhere, a process's cards leave: its series stay, at zero.
        inbox.on_executed(step("s3", 2, process="onboarding"))
        after = samples(client.get("/metrics").text)
        assert after[("selauto_console_deferrals_waiting", "onboarding")] == 0
        assert after[("selauto_console_deferrals_oldest_wait_seconds", "onboarding")] == 0


def test_no_exposition_no_route() -> None:
    app = create_app(Settings(), console=ConsoleSettings(), start_feed=False)
    with TestClient(app) as client:
        assert client.get("/metrics").status_code in (401, 404)
