"""How to reach an OpenAI-compatible LLM server (vLLM): pydantic only, safe to import anywhere."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class LLMClientSettings(BaseModel):
    """One served model: where it is, what it is called, and how long to wait for it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(
        default="http://127.0.0.1:8000/v1",
        description="Base URL of the OpenAI-compatible API, including /v1.",
    )
    model: str | None = Field(
        default=None,
        description="Served model name; None = the artefact's version (what `selauto llm serve` serves it as), "
        "so a server holding another version answers 404 instead of silently serving the wrong model.",
    )
    timeout_s: float = Field(default=10.0, gt=0, description="Per-request timeout (connect, read, write, pool).")
    max_retries: int = Field(default=2, ge=0, description="Retries after a timeout, connection error, 429 or 5xx.")
    retry_backoff_s: float = Field(default=0.2, ge=0, description="First retry delay; doubles on each retry.")
    api_key: SecretStr | None = Field(default=None, description="Sent as a bearer token when set.")
    max_prompts_per_request: int = Field(
        default=256,
        ge=1,
        description="Prompts sent in one completions request; more are sent in turn. vLLM refuses a request "
        "of more than 1,024 prompts (VLLM_MAX_COMPLETION_PROMPTS), and a critic scoring a held-out split asks "
        "for more than that.",
    )
