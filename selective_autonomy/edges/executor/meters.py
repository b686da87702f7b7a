"""The executor's metrics: observable counters over the runner's counters (the numbers ``/healthz``
shows), so the apply path records nothing twice."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry import metrics

if TYPE_CHECKING:
    from selective_autonomy.edges.executor.runner import ExecutorRunner


def register_executor_meters(runner: ExecutorRunner, meter_provider: metrics.MeterProvider | None = None) -> None:
    """Instruments reading ``runner``'s counters on ``meter_provider`` (default: the global one)."""
    meter = metrics.get_meter("selective_autonomy", meter_provider=meter_provider)
    executed = runner.executor.metrics

    def actions(_options: metrics.CallbackOptions) -> list[metrics.Observation]:
        return [
            metrics.Observation(executed.applied, {"status": "applied"}),
            metrics.Observation(executed.duplicates, {"status": "duplicate"}),
            metrics.Observation(executed.failed, {"status": "failed"}),
            metrics.Observation(executed.unknown, {"status": "unknown"}),
        ]

    meter.create_observable_counter(
        "selauto.executor.actions",
        callbacks=[actions],
        unit="{action}",
        description="executed actions by what became of them: applied, a duplicate delivery, failed, or unknown "
        "(the platform's answer was lost)",
    )
    meter.create_observable_counter(
        "selauto.executor.attempts",
        callbacks=[lambda _options: [metrics.Observation(executed.attempts)]],
        unit="{attempt}",
        description="calls to the platform, retries included",
    )
    meter.create_observable_counter(
        "selauto.executor.retries",
        callbacks=[lambda _options: [metrics.Observation(executed.retries)]],
        unit="{attempt}",
        description="calls to the platform that repeated a transient failure",
    )
    # The worker's name and label: one alert covers every dead-letter source.
    meter.create_observable_counter(
        "selauto.dead_letters",
        callbacks=[
            lambda _options: [
                metrics.Observation(runner.state.dead_letters, {"topic": runner.settings.topics.actions_executed})
            ]
        ],
        description="records sent to the dead-letter topic",
    )
