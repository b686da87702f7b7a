"""A **stand-in** for a Confluent Schema Registry, in memory: for tests and for trying
``schema_registry.url`` locally. It is not a Schema Registry.

It serves the subset of the REST API that the project's registry client and confluent-kafka's
``AvroSerializer`` / ``AvroDeserializer`` call, written from Confluent's public API reference
(docs.confluent.io, "Schema Registry API Reference"): subjects and their versions, register and
look up a schema under a subject, schemas by id, compatibility levels (global and per subject) and
the compatibility test. Same schema, same id, across subjects; re-registering returns the existing
id. Compatibility is judged by the Apache Avro reference implementation's reader/writer checker.
Errors carry the API's ``error_code`` values. Optional basic auth; HTTPS through
:func:`~selective_autonomy.edges.standin.serve_in_thread`.

Left out: Kafka-backed storage (a restart forgets everything), deletes, modes, contexts, schema
references, metadata and rule sets, and every schema type but Avro.

Run it on its own with ``python -m selective_autonomy.streams.registry_standin --port 8081``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import threading
from dataclasses import dataclass, field
from typing import Any

import avro.errors
import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"
LEVELS = frozenset(
    {"BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE", "NONE"}
)

# Error codes of the API reference.
SUBJECT_NOT_FOUND = 40401
VERSION_NOT_FOUND = 40402
SCHEMA_NOT_FOUND = 40403
SUBJECT_LEVEL_NOT_FOUND = 40408
INCOMPATIBLE = 409
INVALID_SCHEMA = 42201
INVALID_VERSION = 42202
INVALID_LEVEL = 42203


class _ApiError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class _Stored:
    text: str
    parsed: avro.schema.Schema


@dataclass
class _Subject:
    versions: list[int] = field(default_factory=list)  # schema ids, version n at index n - 1
    level: str | None = None


def _identity(parsed: avro.schema.Schema) -> str:
    """Two texts are the same schema when their parsed forms print the same (whitespace, key order
    and how names are written do not matter)."""
    return json.dumps(parsed.to_json(), sort_keys=True)


class StandInSchemaRegistry:
    """The registry's state and its FastAPI app (:attr:`app`); :attr:`calls` logs each request as
    ``"METHOD /path"``.

    :param compatibility: the global level; default ``BACKWARD``, as in Confluent's registry.
    :param username: require basic auth with this user and ``password``; default none.
    """

    def __init__(
        self, compatibility: str = "BACKWARD", username: str | None = None, password: str | None = None
    ) -> None:
        if compatibility not in LEVELS:
            raise ValueError(f"unknown compatibility level {compatibility!r}")
        self.global_level = compatibility
        self.credentials = (username, password or "") if username is not None else None
        self.calls: list[str] = []
        self._schemas: dict[int, _Stored] = {}
        self._ids: dict[str, int] = {}
        self._subjects: dict[str, _Subject] = {}
        self._lock = threading.Lock()
        self.app = self._build()

    # -- the registry's rules ------------------------------------------------------------------

    def subjects(self) -> list[str]:
        with self._lock:
            return sorted(name for name, subject in self._subjects.items() if subject.versions)

    def level_of(self, subject: str) -> str:
        with self._lock:
            found = self._subjects.get(subject)
            return found.level if found is not None and found.level else self.global_level

    def _parse(self, body: Any) -> avro.schema.Schema:
        if not isinstance(body, dict) or not isinstance(body.get("schema"), str):
            raise _ApiError(422, INVALID_SCHEMA, "Invalid schema: the body needs a 'schema' string")
        if body.get("schemaType", "AVRO") != "AVRO":
            raise _ApiError(422, INVALID_SCHEMA, f"Invalid schema: type {body['schemaType']} (this stand-in: Avro)")
        if body.get("references"):
            raise _ApiError(422, INVALID_SCHEMA, "Invalid schema: references are not supported by this stand-in")
        try:
            return avro.schema.parse(body["schema"])
        except (avro.errors.AvroException, ValueError) as exc:
            raise _ApiError(422, INVALID_SCHEMA, f"Invalid schema: {exc}") from exc

    def _subject(self, name: str) -> _Subject:
        found = self._subjects.get(name)
        if found is None or not found.versions:
            raise _ApiError(404, SUBJECT_NOT_FOUND, f"Subject '{name}' not found.")
        return found

    def _version(self, name: str, version: str) -> tuple[int, int]:
        """``(version number, schema id)`` of ``version`` (a number, ``latest`` or ``-1``) under ``name``."""
        versions = self._subject(name).versions
        if version in ("latest", "-1"):
            return len(versions), versions[-1]
        try:
            number = int(version)
        except ValueError:
            raise _ApiError(422, INVALID_VERSION, f"The specified version '{version}' is not a valid version") from None
        if not 1 <= number <= len(versions):
            raise _ApiError(404, VERSION_NOT_FOUND, f"Version {number} not found.")
        return number, versions[number - 1]

    @staticmethod
    def _reads(reader: avro.schema.Schema, writer: avro.schema.Schema) -> list[str]:
        """Why data written with ``writer`` cannot be read with ``reader``; empty when it can."""
        result = ReaderWriterCompatibilityChecker().get_compatibility(reader, writer)  # type: ignore[no-untyped-call]
        if result.compatibility is SchemaCompatibilityType.compatible:
            return []
        return sorted(result.messages) or [f"{kind.value}" for kind in result.incompatibilities]

    def _problems(self, level: str, new: avro.schema.Schema, against: list[avro.schema.Schema]) -> list[str]:
        """What stops ``new`` under ``level``, checked against ``against`` (oldest first)."""
        if level == "NONE" or not against:
            return []
        if not level.endswith("_TRANSITIVE"):
            against = against[-1:]
        problems: list[str] = []
        for old in against:
            if level.startswith(("BACKWARD", "FULL")):
                problems += [f"new schema cannot read old data: {m}" for m in self._reads(new, old)]
            if level.startswith(("FORWARD", "FULL")):
                problems += [f"old schema cannot read new data: {m}" for m in self._reads(old, new)]
        return problems

    def register(self, name: str, body: Any) -> int:
        parsed = self._parse(body)
        identity = _identity(parsed)
        with self._lock:
            subject = self._subjects.setdefault(name, _Subject())
            schema_id = self._ids.get(identity)
            if schema_id is not None and schema_id in subject.versions:
                return schema_id
            level = subject.level or self.global_level
            problems = self._problems(level, parsed, [self._schemas[i].parsed for i in subject.versions])
            if problems:
                raise _ApiError(
                    409,
                    INCOMPATIBLE,
                    f"Schema being registered is incompatible with an earlier schema for subject "
                    f'"{name}" ({level}): {"; ".join(problems)}',
                )
            if schema_id is None:
                schema_id = max(self._schemas, default=0) + 1
                self._schemas[schema_id] = _Stored(body["schema"], parsed)
                self._ids[identity] = schema_id
            subject.versions.append(schema_id)
            return schema_id

    def lookup(self, name: str, body: Any) -> dict[str, Any]:
        parsed = self._parse(body)
        with self._lock:
            versions = self._subject(name).versions
            schema_id = self._ids.get(_identity(parsed))
            if schema_id is None or schema_id not in versions:
                raise _ApiError(404, SCHEMA_NOT_FOUND, "Schema not found")
            return self._entry(name, versions.index(schema_id) + 1, schema_id)

    def _entry(self, name: str, version: int, schema_id: int) -> dict[str, Any]:
        return {"subject": name, "version": version, "id": schema_id, "schema": self._schemas[schema_id].text}

    def test(self, name: str, version: str, body: Any, verbose: bool) -> dict[str, Any]:
        parsed = self._parse(body)
        with self._lock:
            level = self._subjects[name].level if name in self._subjects else None
            _, schema_id = self._version(name, version)
            # One named version: the level's direction applies, its transitivity does not.
            problems = self._problems(
                (level or self.global_level).removesuffix("_TRANSITIVE"), parsed, [self._schemas[schema_id].parsed]
            )
        answer: dict[str, Any] = {"is_compatible": not problems}
        if verbose:
            answer["messages"] = problems
        return answer

    # -- the REST API --------------------------------------------------------------------------

    def _authorised(self, request: Request) -> bool:
        if self.credentials is None:
            return True
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return (user, password) == self.credentials

    def _build(self) -> FastAPI:
        app = FastAPI(title="stand-in Schema Registry", docs_url=None, redoc_url=None, openapi_url=None)

        def answer(body: Any, status: int = 200) -> JSONResponse:
            return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE)

        @app.middleware("http")
        async def guard(request: Request, call_next: Any) -> Any:
            self.calls.append(f"{request.method} {request.url.path}")
            if not self._authorised(request):
                return answer({"error_code": 401, "message": "Unauthorized"}, 401)
            return await call_next(request)

        @app.exception_handler(_ApiError)
        async def api_error(request: Request, exc: _ApiError) -> JSONResponse:
            return answer({"error_code": exc.code, "message": exc.message}, exc.status)

        async def body_of(request: Request) -> Any:
            try:
                return json.loads(await request.body())
            except ValueError:
                raise _ApiError(422, INVALID_SCHEMA, "Invalid schema: the body is not JSON") from None

        @app.get("/")
        async def root() -> JSONResponse:
            return answer({})

        @app.get("/subjects")
        async def subjects() -> JSONResponse:
            return answer(self.subjects())

        @app.get("/schemas/types")
        async def schema_types() -> JSONResponse:
            return answer(["AVRO"])

        @app.get("/schemas/ids/{schema_id}")
        async def schema_by_id(schema_id: int) -> JSONResponse:
            with self._lock:
                stored = self._schemas.get(schema_id)
            if stored is None:
                raise _ApiError(404, SCHEMA_NOT_FOUND, "Schema not found")
            return answer({"schema": stored.text})

        @app.get("/subjects/{subject}/versions")
        async def versions(subject: str) -> JSONResponse:
            with self._lock:
                return answer(list(range(1, len(self._subject(subject).versions) + 1)))

        @app.get("/subjects/{subject}/versions/{version}")
        async def version_of(subject: str, version: str) -> JSONResponse:
            with self._lock:
                number, schema_id = self._version(subject, version)
                return answer(self._entry(subject, number, schema_id))

        @app.post("/subjects/{subject}/versions")
        async def register(subject: str, request: Request) -> JSONResponse:
            return answer({"id": self.register(subject, await body_of(request))})

        @app.post("/subjects/{subject}")
        async def lookup(subject: str, request: Request) -> JSONResponse:
            return answer(self.lookup(subject, await body_of(request)))

        @app.post("/compatibility/subjects/{subject}/versions/{version}")
        async def compatibility(subject: str, version: str, request: Request) -> JSONResponse:
            verbose = request.query_params.get("verbose", "false").lower() == "true"
            return answer(self.test(subject, version, await body_of(request), verbose))

        def level_from(body: Any) -> str:
            level = body.get("compatibility") if isinstance(body, dict) else None
            if level not in LEVELS:
                raise _ApiError(422, INVALID_LEVEL, f"Invalid compatibility level {level!r}")
            return str(level)

        @app.get("/config")
        async def global_config() -> JSONResponse:
            return answer({"compatibilityLevel": self.global_level})

        @app.put("/config")
        async def set_global_config(request: Request) -> JSONResponse:
            self.global_level = level_from(await body_of(request))
            return answer({"compatibility": self.global_level})

        @app.get("/config/{subject}")
        async def subject_config(subject: str, request: Request) -> JSONResponse:
            with self._lock:
                found = self._subjects.get(subject)
                level = found.level if found is not None else None
            if level is None:
                if request.query_params.get("defaultToGlobal", "false").lower() != "true":
                    raise _ApiError(
                        404, SUBJECT_LEVEL_NOT_FOUND, f"Subject '{subject}' does not have subject-level compatibility"
                    )
                level = self.global_level
            return answer({"compatibilityLevel": level})

        @app.put("/config/{subject}")
        async def set_subject_config(subject: str, request: Request) -> JSONResponse:
            level = level_from(await body_of(request))
            with self._lock:
                self._subjects.setdefault(subject, _Subject()).level = level
            return answer({"compatibility": level})

        return app


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(
        description="A stand-in Confluent Schema Registry (in memory; not for production)."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--compatibility", default="BACKWARD", choices=sorted(LEVELS))
    args = parser.parse_args(argv)
    registry = StandInSchemaRegistry(compatibility=args.compatibility)
    uvicorn.run(registry.app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
