"""The ingest FastAPI app: :func:`create_ingest_app` wires authentication, validation and the
publisher from one frozen settings object.

Routes:

- ``POST /v1/ui-state``: one ``UIStateChanged`` (JSON). 202 once the broker acknowledged it; 400
  not JSON; 401 no credentials; 403 wrong credentials; 413 too large; 422 invalid (every violation
  listed); 503 the broker did not acknowledge it within ``ingest.publish_timeout_s``.
- ``POST /v1/ui-state:batch``: ``{"events": [...]}``, validated all-or-nothing, then published in
  order; 202 with a per-item report, or 503 with the same report when some were not acknowledged.
- ``GET /healthz``; ``GET /metrics`` (Prometheus text) when the app is given an exposition.

Authentication reads the raw body (the signature covers its exact bytes) before anything parses it,
so an unauthenticated caller learns nothing about what a valid body looks like.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at definition
# time, and they name the dependencies built inside _router().
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPBearer
from opentelemetry import metrics, trace
from pydantic import SecretStr
from pydantic.json_schema import models_json_schema

from selective_autonomy.config import IngestSettings, Settings
from selective_autonomy.edges.errors import AuthFailure
from selective_autonomy.edges.ingest.auth import SIGNATURE_SCHEME, Caller, WebhookAuthenticator
from selective_autonomy.edges.ingest.meters import register_ingest_meters
from selective_autonomy.edges.ingest.protocol import Accepted, BatchAccepted, Health, UIStateBatch
from selective_autonomy.edges.ingest.service import IngestService, Refused, TooLarge
from selective_autonomy.edges.ingest.validation import SchemaSource
from selective_autonomy.edges.publisher import AckingProducer
from selective_autonomy.edges.records import KafkaPublisher, RecordPublisher
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.schemas.schema_files import SchemaFiles
from selective_autonomy.streams.prometheus import MetricsExposition, add_metrics_route
from selective_autonomy.streams.serialization import codec_for
from selective_autonomy.webapi.errors import ErrorResponse
from selective_autonomy.webapi.responses import add_framework_error_handlers, http_error_response, status_error_response

log = logging.getLogger(__name__)

API_VERSION = "1.0.0"
BEARER_SCHEME_NAME = "bearerAuth"
SIGNATURE_SCHEME_NAME = "bodySignature"

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "The body is not JSON (malformed_json)."},
    401: {"model": ErrorResponse, "description": "No credentials (unauthenticated)."},
    403: {"model": ErrorResponse, "description": "Wrong token or signature (forbidden)."},
    413: {"model": ErrorResponse, "description": "Body or batch too large (too_large)."},
    422: {"model": ErrorResponse, "description": "Not a valid UIStateChanged for a known process (invalid_event)."},
}


def _body_schema(name: str, max_bytes: int) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "description": f"At most {max_bytes} bytes (413 beyond). Identifiers follow the patterns of the "
            "schema; the process and its cluster, fields and actions must also be in the process's schema (422).",
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
        }
    }


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, at most ``limit`` bytes (:class:`TooLarge` beyond); cached on ``request.state``."""
    cached = getattr(request.state, "raw_body", None)
    if isinstance(cached, bytes):
        return cached
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the body is {declared} bytes; at most {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the body is over {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    request.state.raw_body = body
    return body


def _router(config: IngestSettings) -> APIRouter:
    # The security schemes document the two ways in; the check itself is WebhookAuthenticator's,
    # over the raw body, so auto_error is off and their values are not used.
    bearer = HTTPBearer(
        auto_error=False, scheme_name=BEARER_SCHEME_NAME, description="Authorization: Bearer <ingest token>."
    )
    signed = APIKeyHeader(
        name=config.signature_header,
        auto_error=False,
        scheme_name=SIGNATURE_SCHEME_NAME,
        description=f"{SIGNATURE_SCHEME}<hex HMAC-SHA256 of the exact request body bytes under the shared secret>.",
    )

    async def authenticated(
        request: Request, _bearer: Annotated[Any, Depends(bearer)], _signed: Annotated[Any, Depends(signed)]
    ) -> Caller:
        body = await read_body(request, config.max_body_bytes)
        authenticator: WebhookAuthenticator = request.app.state.authenticator
        return authenticator.authenticate(request.headers, body)

    router = APIRouter(tags=["ingest"])

    @router.post(
        "/v1/ui-state",
        status_code=202,
        response_model=Accepted,
        summary="Publish one UI state",
        responses={**_ERRORS, 503: {"model": ErrorResponse, "description": "The broker did not acknowledge it."}},
        openapi_extra=_body_schema("UIStateChanged", config.max_body_bytes),
    )
    async def post_ui_state(request: Request, caller: Annotated[Caller, Depends(authenticated)]) -> Accepted:
        """Validate one `UIStateChanged` against the contract and its process schema, publish it to `ui.state`
        keyed by `session_id` (Confluent wire format), and answer once the broker acknowledged it."""
        service: IngestService = request.app.state.ingest
        return await service.publish_one(await read_body(request, config.max_body_bytes), caller, request.headers)

    @router.post(
        "/v1/ui-state:batch",
        status_code=202,
        response_model=BatchAccepted,
        summary="Publish a batch of UI states (bulk replay)",
        responses={
            **_ERRORS,
            422: {"model": ErrorResponse, "description": "Some events are invalid; none was published."},
            503: {"model": BatchAccepted, "description": "Some events were not acknowledged (see items)."},
        },
        openapi_extra=_body_schema("UIStateBatch", config.max_body_bytes),
    )
    async def post_ui_state_batch(request: Request, caller: Annotated[Caller, Depends(authenticated)]) -> Response:
        """Validate every event first (all-or-nothing: one invalid event refuses the batch), then publish them
        in order and report per item. Retrying the batch, or its `not_delivered` items, is safe."""
        service: IngestService = request.app.state.ingest
        complete, report = await service.publish_batch(
            await read_body(request, config.max_body_bytes), caller, request.headers
        )
        return JSONResponse(report.model_dump(mode="json"), status_code=202 if complete else 503)

    @router.get("/healthz", tags=["health"], response_model=Health, summary="Liveness and counters")
    async def healthz(request: Request) -> Health:
        service: IngestService = request.app.state.ingest
        counters = service.counters
        return Health(
            processes=service.schemas.processes(),
            accepted=counters.accepted,
            refused=counters.refused,
            not_delivered=counters.not_delivered,
        )

    return router


def _add_error_handlers(app: FastAPI) -> None:
    def count_refusal(request: Request) -> None:
        service: IngestService | None = getattr(request.app.state, "ingest", None)
        if service is not None:
            service.counters.refused += 1

    @app.exception_handler(AuthFailure)
    async def auth_failure(request: Request, exc: AuthFailure) -> Response:
        count_refusal(request)
        if exc.status_code == 401:
            return status_error_response(401, exc.message, {"WWW-Authenticate": 'Bearer realm="selauto-ingest"'})
        return status_error_response(403, exc.message)

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        if exc.status_code != 503:
            count_refusal(request)
        headers = {"Retry-After": "1"} if exc.status_code == 503 else None
        return http_error_response(exc, headers)

    add_framework_error_handlers(app)


def _openapi(app: FastAPI, config: IngestSettings) -> dict[str, Any]:
    """FastAPI's document plus the contract models the raw-body routes take, with the batch limit."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes, tags=app.openapi_tags
    )
    _, definitions = models_json_schema(
        [(UIStateChanged, "validation"), (UIStateBatch, "validation")], ref_template="#/components/schemas/{model}"
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in definitions.get("$defs", {}).items():
        schemas.setdefault(name, schema)
    # The limit is a setting, not part of the model: state the configured one.
    schemas["UIStateBatch"]["properties"]["events"]["maxItems"] = config.max_batch_items
    document["components"]["schemas"] = dict(sorted(schemas.items()))
    app.openapi_schema = document
    return document


def create_ingest_app(
    settings: Settings,
    *,
    publisher: RecordPublisher | None = None,
    schemas: SchemaSource | None = None,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    exposition: MetricsExposition | None = None,
) -> FastAPI:
    """The ingest app.

    :param settings: topics, Kafka client settings, ``models_dir`` and the ``ingest`` section.
    :param publisher: where events go; default a Kafka producer acking within ``ingest.publish_timeout_s``.
    :param schemas: process schemas; default those in ``settings.models_dir`` (reloaded when a file changes).
    :param tracer_provider: for the publish spans; default the global provider.
    :param meter_provider: for the ingest counters; default the global provider.
    :param exposition: the Prometheus text of ``meter_provider``, served on ``/metrics``; default none (no route).
    :raises ConfigError: when no credential is configured for the auth mode (the webhook would be open).
    """
    config = settings.ingest
    authenticator = WebhookAuthenticator.from_settings(config)
    codec = codec_for(settings)
    if publisher is None:
        publisher = KafkaPublisher(AckingProducer(settings, timeout_s=config.publish_timeout_s, codec=codec))
    service = IngestService(
        config,
        settings.topics.ui_state,
        codec,
        publisher,
        schemas or SchemaFiles(settings.models_dir),
        tracer_provider,
    )
    register_ingest_meters(service.counters, meter_provider)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.publisher.start()
        try:
            yield
        finally:
            try:
                service.publisher.close()
            except Exception:  # shutting down: report, do not mask the original exit
                log.exception("ingest: closing the producer failed")

    app = FastAPI(
        title="selective-autonomy ingest",
        version=API_VERSION,
        description="The BPM/CRM platform's webhook: UI states in, validated, onto the ui.state topic.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.ingest = service
    app.state.authenticator = authenticator
    app.include_router(_router(config))
    if exposition is not None:
        add_metrics_route(app, exposition)
    _add_error_handlers(app)
    app.openapi = lambda: _openapi(app, config)  # type: ignore[method-assign]
    return app


class _NoPublisher:
    """A publisher for building the app without a broker (the OpenAPI document)."""

    async def publish(self, records: Any) -> list[Any]:
        raise RuntimeError("documentation-only app")

    def start(self) -> None:
        return None

    def close(self) -> None:
        return None


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of the ingest API with the default settings (committed as docs/openapi-ingest.json)."""
    settings = Settings(ingest=IngestSettings(tokens={"docs": SecretStr("d" * 16)}))
    app = create_ingest_app(settings, publisher=_NoPublisher(), schemas=SchemaFiles(settings.models_dir))
    return app.openapi()
