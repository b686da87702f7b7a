"""The operator console's settings: the ``console`` section.

Environment examples: ``SELAUTO_CONSOLE__OPERATORS='{"alice": "a-long-random-token"}'``,
``SELAUTO_CONSOLE__SECRET_KEY=...``, ``SELAUTO_CONSOLE__PORT=8080``.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator

from selective_autonomy.config._section import Section


class ConsoleSettings(Section):
    """The operator console (`selauto console`)."""

    host: str = Field(default="127.0.0.1", description="Interface uvicorn listens on.")
    port: int = Field(default=8080, ge=1, le=65535)
    operators: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="operator id -> access token. The token is the bearer token of API calls and the password "
        "of the login form; the id is what feedback records as operator_id. Nobody can log in while empty.",
    )
    operator_processes: dict[str, list[str]] = Field(
        default_factory=dict,
        description="operator id -> the process ids whose deferrals they see and answer; unlisted: every process.",
    )
    supervisors: list[str] = Field(
        default_factory=list,
        description="Operator ids who may also use the hand controls of the processes they see: set a stage, "
        "pause and resume autonomy (POST /api/processes/{id}/stage|pause|resume). Empty: nobody, from the "
        "console (`selauto stage|pause|resume` still work where the models directory is).",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Signs session cookies and CSRF tokens; unset: a random key per start (sessions end on restart).",
    )
    session_ttl_s: int = Field(default=12 * 3600, ge=60, description="How long a login lasts.")
    cookie_secure: bool = Field(default=False, description="Send the session cookie over HTTPS only (set behind TLS).")
    active_session_window_s: float = Field(
        default=900.0, gt=0, description="A session counts as running unattended while it acted this recently."
    )
    ending_actions: list[str] = Field(
        default_factory=lambda: ["close_chat"], description="Action types after which a session has ended."
    )
    max_tracked_sessions: int = Field(
        default=100_000, ge=100, description="Sessions whose progress is remembered (least recently seen dropped)."
    )
    timezone: str = Field(default="UTC", description="IANA zone that decides when 'today' starts for the counters.")
    chat_turns: int = Field(default=8, ge=0, description="Newest chat turns shown on a card.")
    recent_actions: int = Field(default=6, ge=0, description="Newest actions shown on a card.")
    answer_timeout_s: float = Field(default=10.0, gt=0, description="Longest wait for the broker to ack an answer.")
    audit_rate: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="Share of unattended steps offered to operators for audit, sampled by action id (the same "
        "steps in every console replica); 0 offers none.",
    )
    max_pending_audits: int = Field(
        default=500, ge=1, description="Pending audits kept; beyond this the oldest are dropped."
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("operators")
    @classmethod
    def _usable_tokens(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for operator_id, token in value.items():
            if not operator_id.strip():
                raise ValueError("an operator id may not be empty")
            if len(token.get_secret_value()) < 8:
                raise ValueError(f"the token of operator {operator_id!r} is shorter than 8 characters")
        return value

    @model_validator(mode="after")
    def _supervisors_are_operators(self) -> ConsoleSettings:
        unknown = sorted(set(self.supervisors) - set(self.operators))
        if unknown:
            raise ValueError(f"supervisors {unknown} are not in console.operators")
        return self

    def is_supervisor(self, operator_id: str) -> bool:
        return operator_id in self.supervisors

    def processes_of(self, operator_id: str) -> frozenset[str] | None:
        """The processes ``operator_id`` answers for; None means every process."""
        listed = self.operator_processes.get(operator_id)
        return None if listed is None else frozenset(listed)
