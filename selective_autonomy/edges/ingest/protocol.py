"""Request and response bodies of the ingest API. Pydantic only: no FastAPI, no Kafka.

The request bodies are the contract itself: ``POST /v1/ui-state`` takes one ``UIStateChanged`` as
JSON, ``POST /v1/ui-state:batch`` takes ``{"events": [UIStateChanged, ...]}``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from selective_autonomy.schemas.events import UIStateChanged


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UIStateBatch(_Body):
    """Several UI states at once (a bulk replay): validated all-or-nothing, published in order."""

    events: list[UIStateChanged] = Field(min_length=1, description="Published in this order; keyed by session_id.")


class Accepted(_Body):
    """The event is on ``ui.state``: the broker acknowledged it."""

    event_id: str = Field(description="The event's id (generated when the body had none).")
    session_id: str
    state_version: int
    topic: str
    partition: int
    offset: int


class BatchItem(_Body):
    """What happened to one event of a batch."""

    index: int = Field(description="Position in the request's events list.")
    event_id: str
    session_id: str
    state_version: int
    status: Literal["published", "not_delivered"]
    partition: int | None = None
    offset: int | None = None
    error: str | None = None


class BatchAccepted(_Body):
    """Per-item outcome of a batch: 202 when every event was acknowledged, else 503 with the details.

    Retrying a batch (or just its ``not_delivered`` items) is safe: consumers skip a state version
    they already decided.
    """

    published: int
    not_delivered: int
    items: list[BatchItem]


class Health(_Body):
    status: Literal["ok"] = "ok"
    processes: list[str] = Field(description="Process ids whose schema is known (the ones accepted).")
    accepted: int
    refused: int
    not_delivered: int
