"""What the webhook does with an authenticated body: parse, validate, publish, wait for the ack.

Nothing reaches the topic before the whole body (every item of a batch) passed validation.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from selective_autonomy.config import IngestSettings
from selective_autonomy.edges.errors import EdgeError, NotDelivered
from selective_autonomy.edges.ingest.auth import Caller
from selective_autonomy.edges.ingest.protocol import Accepted, BatchAccepted, BatchItem
from selective_autonomy.edges.ingest.validation import SchemaSource, parse_json, validate_event
from selective_autonomy.edges.publisher import Delivered
from selective_autonomy.edges.records import Outgoing, RecordPublisher
from selective_autonomy.errors import ContractError
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.streams.serialization import AvroCodec
from selective_autonomy.streams.tracing import TRACER_NAME, headers_for, messaging_attributes
from selective_autonomy.webapi.errors import HttpError, ItemViolations, Violation

log = logging.getLogger(__name__)


class Refused(HttpError, EdgeError):
    """A webhook request that cannot be served (the project's one HTTP error model)."""

    status_code = 400
    code = "refused"


class MalformedJson(Refused):
    status_code = 400
    code = "malformed_json"


class InvalidEvent(Refused):
    status_code = 422
    code = "invalid_event"


class InvalidBatch(Refused):
    status_code = 422
    code = "invalid_batch"


class TooLarge(Refused):
    status_code = 413
    code = "too_large"


class Unavailable(Refused):
    status_code = 503
    code = "not_delivered"


@dataclass
class IngestCounters:
    accepted: int = 0
    refused: int = 0
    not_delivered: int = 0


class IngestService:
    """Validates and publishes webhook bodies.

    :param config: the ingest section (batch limit).
    :param topic: the ``ui.state`` topic records are published to.
    :param codec: encodes the records (one per process: :func:`~selective_autonomy.streams.serialization.codec_for`).
    :param publisher: where records go (a Kafka publisher in service, a list in unit tests).
    :param schemas: the process schemas bodies are checked against.
    :param tracer_provider: for the publish spans; default the global provider.
    """

    def __init__(
        self,
        config: IngestSettings,
        topic: str,
        codec: AvroCodec,
        publisher: RecordPublisher,
        schemas: SchemaSource,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self.topic = topic
        self.config = config
        self.publisher = publisher
        self.schemas = schemas
        self.tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer(TRACER_NAME)
        self.counters = IngestCounters()
        self.codec = codec

    def _encoded(self, event: UIStateChanged) -> bytes | list[Violation]:
        """The record's bytes, or why the event does not fit Avro (an integer beyond 64 bits, say)."""
        try:
            return self.codec.encode(event, self.topic)
        except ContractError as exc:
            return [Violation(loc="body", msg=str(exc))]
        except OverflowError as exc:  # fastavro's, for a long beyond 64 bits; AvroCodec lets it through
            return [Violation(loc="body", msg=f"{event.avro_name} does not fit its Avro schema: {exc}")]

    def _document(self, raw: bytes) -> Any:
        try:
            return parse_json(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedJson(f"the body is not JSON: {exc}") from None

    def _checked(self, document: Any) -> tuple[UIStateChanged, bytes] | list[Violation]:
        """The valid event with its record bytes, or every violation (contract, schema, then Avro)."""
        checked = validate_event(document, self.schemas)
        if isinstance(checked, list):
            return checked
        encoded = self._encoded(checked)
        return encoded if isinstance(encoded, list) else (checked, encoded)

    def parse_one(self, raw: bytes) -> tuple[UIStateChanged, bytes]:
        """The valid event in ``raw`` and its record bytes; raises :class:`MalformedJson` or :class:`InvalidEvent`."""
        checked = self._checked(self._document(raw))
        if isinstance(checked, list):
            raise InvalidEvent(f"{len(checked)} violation(s): {checked[0].loc}: {checked[0].msg}", violations=checked)
        return checked

    def parse_batch(self, raw: bytes) -> list[tuple[UIStateChanged, bytes]]:
        """Every event of a batch body, or :class:`InvalidBatch` listing every bad item (all-or-nothing)."""
        document = self._document(raw)
        if not isinstance(document, dict) or set(document) != {"events"} or not isinstance(document["events"], list):
            raise InvalidBatch(
                'the body must be {"events": [UIStateChanged, ...]}',
                violations=[Violation(loc="body", msg='must be an object with exactly one key, "events", a list')],
            )
        items: list[Any] = document["events"]
        if not items:
            raise InvalidBatch("the batch is empty", violations=[Violation(loc="events", msg="must not be empty")])
        if len(items) > self.config.max_batch_items:
            raise TooLarge(f"{len(items)} events in one batch; at most {self.config.max_batch_items}")
        events: list[tuple[UIStateChanged, bytes]] = []
        bad: list[ItemViolations] = []
        for index, item in enumerate(items):
            checked = self._checked(item)
            if isinstance(checked, list):
                bad.append(ItemViolations(index=index, violations=checked))
            else:
                events.append(checked)
        if bad:
            first = bad[0]
            raise InvalidBatch(
                f"{len(bad)} of {len(items)} events are invalid (first: events.{first.index}."
                f"{first.violations[0].loc}: {first.violations[0].msg}); nothing was published",
                items=bad,
            )
        return events

    async def _publish(
        self, encoded: list[tuple[UIStateChanged, bytes]], caller: Caller, http_headers: Mapping[str, str]
    ) -> list[Delivered | NotDelivered]:
        events = [event for event, _ in encoded]
        parent = propagate.extract(dict(http_headers))
        with self.tracer.start_as_current_span(
            f"{self.topic} publish",
            context=parent,
            kind=SpanKind.PRODUCER,
            attributes={**messaging_attributes(self.topic, "publish"), "messaging.batch.message_count": len(events)},
        ) as span:
            span.set_attribute("selauto.ingest.caller", caller.name)
            if len(events) == 1:
                span.set_attribute("selauto.session_id", events[0].session_id)
            headers = headers_for(span)
            records = [Outgoing(self.topic, e.session_id, e, headers, value) for e, value in encoded]
            outcomes = await self.publisher.publish(records)
            failed = sum(isinstance(o, NotDelivered) for o in outcomes)
            span.set_attribute("selauto.ingest.not_delivered", failed)
        self.counters.accepted += len(events) - failed
        self.counters.not_delivered += failed
        return outcomes

    async def publish_one(self, raw: bytes, caller: Caller, http_headers: Mapping[str, str]) -> Accepted:
        """Validate and publish one event; :class:`Unavailable` when the broker did not ack it in time."""
        event, value = self.parse_one(raw)
        [outcome] = await self._publish([(event, value)], caller, http_headers)
        if isinstance(outcome, NotDelivered):
            log.warning("ingest: %s/%s not delivered: %s", event.session_id, event.state_version, outcome)
            raise Unavailable(f"the broker did not acknowledge the event: {outcome}; retry it (same event_id)")
        return Accepted(
            event_id=event.event_id,
            session_id=event.session_id,
            state_version=event.state_version,
            topic=outcome.topic,
            partition=outcome.partition,
            offset=outcome.offset,
        )

    async def publish_batch(
        self, raw: bytes, caller: Caller, http_headers: Mapping[str, str]
    ) -> tuple[bool, BatchAccepted]:
        """Validate every event, then publish them in order; returns (all acknowledged, per-item report)."""
        encoded = self.parse_batch(raw)
        outcomes = await self._publish(encoded, caller, http_headers)
        items = []
        for index, ((event, _), outcome) in enumerate(zip(encoded, outcomes, strict=True)):
            common: dict[str, Any] = {
                "index": index,
                "event_id": event.event_id,
                "session_id": event.session_id,
                "state_version": event.state_version,
            }
            if isinstance(outcome, NotDelivered):
                items.append(BatchItem(**common, status="not_delivered", error=str(outcome)))
            else:
                items.append(
                    BatchItem(**common, status="published", partition=outcome.partition, offset=outcome.offset)
                )
        failed = sum(item.status == "not_delivered" for item in items)
        return failed == 0, BatchAccepted(published=len(items) - failed, not_delivered=failed, items=items)
