"""Settings of the edges: the ``ingest`` and ``executor`` sections.

Environment examples: ``SELAUTO_INGEST__TOKENS='{"crm": "a-long-random-token"}'``,
``SELAUTO_INGEST__HMAC_SECRETS='{"crm": "shared-signing-secret"}'``,
``SELAUTO_EXECUTOR__HTTP__BASE_URL=https://bpm.internal/api``,
``SELAUTO_EXECUTOR__HTTP__SECRET_HEADERS='{"Authorization": "Bearer ..."}'``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, Self

from pydantic import Field, JsonValue, SecretStr, field_validator, model_validator

from selective_autonomy.config._section import Section

MIN_SECRET_CHARS = 16
"""Shortest bearer token or signing secret accepted: machine credentials have no excuse to be short."""


class IngestAuthMode(StrEnum):
    """How a platform proves who it is on ``POST /v1/ui-state``."""

    bearer = "bearer"  # Authorization: Bearer <token>
    hmac = "hmac"  # <signature_header>: sha256=<hex HMAC-SHA256 of the raw body>
    either = "either"  # one of the two; every credential presented must be valid


def _check_secrets(what: str, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
    for caller, secret in value.items():
        if not caller.strip():
            raise ValueError(f"a caller name of {what} may not be empty")
        if len(secret.get_secret_value()) < MIN_SECRET_CHARS:
            raise ValueError(f"the {what} entry of {caller!r} is shorter than {MIN_SECRET_CHARS} characters")
    return value


class IngestSettings(Section):
    """The platform's webhook (`selauto ingest http`)."""

    host: str = Field(default="127.0.0.1", description="Interface uvicorn listens on.")
    port: int = Field(default=8088, ge=1, le=65535)
    auth: IngestAuthMode = Field(default=IngestAuthMode.either, description="bearer, hmac or either.")
    tokens: dict[str, SecretStr] = Field(
        default_factory=dict, description="caller name -> bearer token. The name is logged, never the token."
    )
    hmac_secrets: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="caller name -> HMAC-SHA256 signing secret; two entries for one caller allow a rotation.",
    )
    signature_header: str = Field(
        default="X-Selauto-Signature", min_length=1, description="Header carrying sha256=<hex> of the raw body."
    )
    publish_timeout_s: float = Field(
        default=5.0, gt=0, le=120, description="Longest wait for the broker's ack before answering 503."
    )
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, description="Larger bodies get 413.")
    max_batch_items: int = Field(default=500, ge=1, le=100_000, description="Most events in one batch request.")

    @field_validator("tokens")
    @classmethod
    def _usable_tokens(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        return _check_secrets("ingest.tokens", value)

    @field_validator("hmac_secrets")
    @classmethod
    def _usable_secrets(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        return _check_secrets("ingest.hmac_secrets", value)


class RetrySettings(Section):
    """Exponential backoff for transient failures (5xx, 408/425/429, timeouts, connection errors).

    Attempt ``n`` (from 1) waits ``min(max_delay_s, initial_delay_s * multiplier ** (n - 1))`` before
    the next one, spread by +/- ``jitter``; a ``Retry-After`` answer is honoured up to ``max_delay_s``.
    The action fails once ``max_attempts`` calls were made or the next wait would end after ``budget_s``.
    """

    max_attempts: int = Field(default=5, ge=1, le=100)
    initial_delay_s: float = Field(default=0.2, ge=0)
    multiplier: float = Field(default=2.0, ge=1)
    max_delay_s: float = Field(default=5.0, ge=0)
    budget_s: float = Field(default=30.0, gt=0, description="Longest time spent on one action, waits included.")
    jitter: float = Field(default=0.2, ge=0, le=1, description="Relative spread of each wait (0.2: +/-20 %).")


HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]

DEFAULT_BODY: JsonValue = {
    "action_id": "{action_id}",
    "session_id": "{session_id}",
    "process_id": "{process_id}",
    "business_cluster": "{business_cluster}",
    "state_version": "{state_version}",
    "action_type": "{action_type}",
    "arguments": "{arguments}",
    "executed_by": "{executed_by}",
    "operator_id": "{operator_id}",
}
"""The body a POST/PUT/PATCH route sends when it names none: the action and its session, typed."""


class HttpRoute(Section):
    """How one action type is applied over HTTP. Templates: see :mod:`selective_autonomy.edges.executor.templates`."""

    method: HttpMethod = "POST"
    url: str = Field(
        min_length=1,
        description="URL template, absolute or relative to http.base_url, "
        "e.g. /sessions/{session_id}/orders/{arguments.order_id}/lookup (placeholders are percent-encoded).",
    )
    body: JsonValue | None = Field(
        default=None,
        description="JSON body template; a string that is exactly one placeholder keeps the value's type. "
        "None: the default envelope for POST/PUT/PATCH, no body for GET/DELETE.",
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Header templates for this route.")
    timeout_s: float | None = Field(default=None, gt=0, description="Per-call timeout; default http.timeout_s.")


class HttpAdapterSettings(Section):
    """The HTTP adapter: one route per action type (``*`` for every other type)."""

    base_url: str | None = Field(default=None, description="Prefix of relative route URLs.")
    routes: dict[str, HttpRoute] = Field(default_factory=dict, description="action type (or *) -> route.")
    headers: dict[str, str] = Field(default_factory=dict, description="Header templates sent on every call.")
    secret_headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="Headers sent verbatim on every call (credentials); masked when shown."
    )
    timeout_s: float = Field(default=10.0, gt=0, description="Per-call timeout (connect, read, write).")
    max_connections: int = Field(default=32, ge=1)
    excerpt_chars: int = Field(default=500, ge=0, description="Response body kept in ActionFailed.")
    transient_statuses: list[int] = Field(
        default_factory=lambda: [408, 425, 429], description="Statuses retried besides every 5xx."
    )


class ExecutorSettings(Section):
    """The BPM executor (`selauto executor`)."""

    group_id: str | None = Field(default=None, description="Consumer group; default <app_id>-executor.")
    adapter: Literal["http"] = Field(default="http", description="How actions reach the platform.")
    http: HttpAdapterSettings = Field(default_factory=HttpAdapterSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    health_host: str = Field(default="0.0.0.0", description="Interface of the health endpoint.")
    health_port: int = Field(default=6067, ge=0, le=65535, description="/healthz and /readyz; 0 picks a free port.")
    max_in_flight: int = Field(default=16, ge=1, description="Sessions applied concurrently (each in order).")
    poll_batch: int = Field(default=64, ge=1, le=10_000, description="Most records taken per poll.")
    publish_timeout_s: float = Field(default=10.0, gt=0, description="Longest wait for the ack of a failure record.")

    @model_validator(mode="after")
    def _poll_interval_fits(self) -> Self:
        # The consumer's max.poll.interval.ms is derived from these; librdkafka caps it at 24 h.
        if self.poll_batch * self.retry.budget_s > 86_000:
            raise ValueError("executor.poll_batch * executor.retry.budget_s must stay under 86000 s")
        return self

    def group(self, app_id: str) -> str:
        return self.group_id or f"{app_id}-executor"
