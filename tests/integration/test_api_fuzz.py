"""Property-based fuzzing of the two HTTP APIs from their committed OpenAPI documents (schemathesis).

The real ingest webhook and the real console run under uvicorn on 127.0.0.1, both on the session's
real broker; schemathesis (its CLI, in a subprocess, so its Hypothesis settings stay its own) runs
every check against each, once with credentials and once without. The run fails on any 5xx, any
status code the document does not list, any response that breaks its documented schema, and any
unauthenticated request that is not refused.

Two checks are told what the documents cannot state, since it depends on what is running rather
than on the request's shape: a well-formed body may still name a process that has no schema here, or
a deferral that is not pending (so ``positive_data_acceptance`` also accepts 404, 409 and 422); an
unauthenticated run expects 401 from everything but ``/healthz``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from selective_autonomy.config import ConsoleSettings, IngestSettings, Settings
from selective_autonomy.console.app import create_app
from selective_autonomy.edges.ingest.app import create_ingest_app
from selective_autonomy.inference.registry import ModelRegistry
from selective_autonomy.streams.producer import EventProducer
from tests.factories import deferral
from tests.integration.console_support import Server, with_schema
from tests.integration.decide_support import PROCESS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DOCS = Path(__file__).parents[2] / "docs"
SEED = 21
# The number of examples is set by the time the suite can spare (about a minute for both APIs, on
# 2 cores, with the server and the fuzzer sharing them): the webhook's 3 operations get 100 examples
# each, which with schemathesis's coverage phase (boundary and negative values of every constraint
# in the document) makes ~760 requests, a few hundred per operation, in ~12 s; the console's 12
# operations got 60 each, ~800 requests in ~14 s (now 17, with the hand controls). 250 per webhook
# operation took 47 s and found nothing more. The seed makes every run send the same requests.
INGEST_EXAMPLES = 100
CONSOLE_EXAMPLES = 60
# Without credentials every request is refused before its body is read, so a few per operation
# show it; more would only repeat the same 401.
UNAUTHENTICATED_EXAMPLES = 10
INGEST_TOKEN = "ingest-token-0123456789"
CONSOLE_TOKEN = "alice-token-1"

SIGNED_IN = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "404", "409", "422"]

[checks.negative_data_rejection]
# schemathesis's list (5xx left out: not_a_server_error fails those) plus 413, the documented answer
# to a batch over its maxItems.
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
"""
# Without valid credentials, well-formed or not, every request to every operation must be refused
# before anything else is looked at: 401, or 403 when schemathesis sends a made-up token or signature.
ANONYMOUS = """
[checks.positive_data_acceptance]
expected-statuses = ["401", "403"]

[checks.negative_data_rejection]
expected-statuses = ["401", "403"]
"""


def schemathesis(
    document: Path, url: str, tmp_path: Path, examples: int, headers: dict[str, str] | None = None
) -> float:
    """Run schemathesis on ``document`` against ``url``, with ``headers`` or (none given) unauthenticated
    on every operation but ``/healthz``; returns its wall time, failing the test with its report when it
    found anything."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = tmp_path / "schemathesis.toml"
    config.write_text(SIGNED_IN if headers else ANONYMOUS)
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "run",
        str(document),
        "--url",
        url,
        "--checks",
        "all",
        "--seed",
        str(SEED),
        "--max-examples",
        str(examples),
        "--workers",
        "1",
        "--phases",
        "examples,coverage,fuzzing",
        "--request-timeout",
        "10",
        "--report-dir",
        str(tmp_path / "report"),
        "--no-color",
    ]
    for name, value in (headers or {}).items():
        command += ["--header", f"{name}: {value}"]
    if not headers:
        command += ["--exclude-path", "/healthz"]
    started = time.monotonic()
    # In tmp_path: schemathesis keeps a cache folder in its working directory.
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False, cwd=tmp_path)
    elapsed = time.monotonic() - started
    output = done.stdout + done.stderr
    (tmp_path / "output.txt").write_text(output)
    assert done.returncode == 0, output[-8000:]
    return elapsed


@pytest.fixture
def ingest_url(make_settings: Callable[..., Settings], tmp_path: Path) -> object:
    settings = make_settings(partitions=1)
    settings = settings.model_copy(
        update={
            "models_dir": tmp_path / "models",
            "ingest": IngestSettings(tokens={"crm": SecretStr(INGEST_TOKEN)}, publish_timeout_s=5.0),
        }
    )
    ModelRegistry(settings.models_dir).save_schema(PROCESS)
    with Server(create_ingest_app(settings)) as server:
        yield server.url


@pytest.fixture
def console_url(make_settings: Callable[..., Settings], tmp_path: Path) -> object:
    settings = with_schema(make_settings(partitions=1), tmp_path)
    with EventProducer(settings) as producer:
        for session in ("s1", "s2"):
            producer.send(settings.topics.operator_deferrals, deferral(session, 1), key=session)
    # A supervisor, so the hand controls answer as documented rather than 403: what they change (the
    # test schema's pointer, a store in the test's data dir) is this test's own.
    console = ConsoleSettings(operators={"alice": SecretStr(CONSOLE_TOKEN)}, supervisors=["alice"])
    with Server(create_app(settings, console=console)) as server:
        yield server.url


def test_the_ingest_api_answers_every_generated_request_as_documented(ingest_url: str, tmp_path: Path) -> None:
    document = DOCS / "openapi-ingest.json"
    auth = {"Authorization": f"Bearer {INGEST_TOKEN}"}
    signed_in = schemathesis(document, ingest_url, tmp_path / "auth", INGEST_EXAMPLES, auth)
    anonymous = schemathesis(document, ingest_url, tmp_path / "anon", UNAUTHENTICATED_EXAMPLES)
    print(f"\ningest: authenticated {signed_in:.1f} s, unauthenticated {anonymous:.1f} s")


def test_the_console_api_answers_every_generated_request_as_documented(console_url: str, tmp_path: Path) -> None:
    document = DOCS / "openapi-console.json"
    auth = {"Authorization": f"Bearer {CONSOLE_TOKEN}"}
    signed_in = schemathesis(document, console_url, tmp_path / "auth", CONSOLE_EXAMPLES, auth)
    anonymous = schemathesis(document, console_url, tmp_path / "anon", UNAUTHENTICATED_EXAMPLES)
    print(f"\nconsole: authenticated {signed_in:.1f} s, unauthenticated {anonymous:.1f} s")
